package querysvc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
)

// Arrow batches go to the network without being copied once more.
//
// connect's proto codec would marshal every QueryStreamResponse into a buffer
// of connect's: another copy of each ~1 MB group the encoders have just
// written, made on the one goroutine that sends. Instead the encoders write a
// batch message's protobuf wire form themselves (wireBuffer): the IPC bytes
// after some headroom, then the framing (tags and lengths) into the headroom
// once the length is known, and the row count after. The Query service's
// codec hands connect those bytes as they are.
//
// connect keeps the buffers a codec returns, for reuse, unless they hold more
// than 8 MiB (maxRecycleBufferSize in connect-go's buffer_pool.go). Wire
// buffers are reused once sent, so each is written in a region of more than
// that capacity: reserved address space, of which only the pages written
// become memory. connect lets them go; TestConnectDoesNotKeepWireBuffers
// fails if an upgrade of connect changes that.

const (
	// headroom fits the longest framing: two one-byte tags, two varints.
	headroom = 2 + 2*binary.MaxVarintLen64
	// regionSize is a wire buffer's capacity; it must exceed connect's
	// 8 MiB recycling limit. A group that outgrows it (one huge batch)
	// moves to the heap and is not reused.
	regionSize = 16 << 20
	// keptRegions bounds the regions kept for reuse; more are unmapped. A
	// region keeps the pages written in it, so only one whose group stayed
	// within keptWritten (an ordinary group: ~1 MB) is kept.
	keptRegions = 16
	keptWritten = 4 << 20
)

var regions = make(chan []byte, keptRegions)

// wireBuffer is where an encoder writes one batch message.
type wireBuffer struct {
	region []byte        // reserved for this buffer, returned on release
	buf    *bytes.Buffer // starts in region, headroom first; IPC bytes after
}

func newWireBuffer() *wireBuffer {
	var r []byte
	select {
	case r = <-regions:
	default:
		r = newRegion()
	}
	return &wireBuffer{region: r, buf: bytes.NewBuffer(r[:headroom])}
}

// release makes the region available to other groups. The buffer must not
// be used afterwards.
func (w *wireBuffer) release() {
	if !w.keep() {
		freeRegion(w.region)
	}
	w.region, w.buf = nil, nil
}

// keep puts the region back for reuse, if it held an ordinary group and
// fewer than keptRegions are kept.
func (w *wireBuffer) keep() bool {
	inRegion := &w.buf.Bytes()[0] == &w.region[:1][0]
	if !inRegion || w.buf.Len() > keptWritten {
		return false
	}
	select {
	case regions <- w.region:
		return true
	default:
		return false
	}
}

// ipcLen is the length of the IPC bytes written so far.
func (w *wireBuffer) ipcLen() int { return w.buf.Len() - headroom }

// message completes the buffer as QueryStreamResponse{batch: {arrow_batch,
// row_count}} and returns its wire form and, within it, the IPC bytes. It is
// the encoding proto.Marshal gives such a message.
func (w *wireBuffer) message(rows int64) (wire, ipc []byte) {
	n := w.ipcLen()
	var tail []byte
	if rows != 0 {
		tail = protowire.AppendVarint(protowire.AppendTag(nil, 3, protowire.VarintType), uint64(rows))
	}
	inner := len(tail)
	if n > 0 {
		inner += protowire.SizeTag(1) + protowire.SizeBytes(n)
	}
	head := protowire.AppendTag(make([]byte, 0, headroom), 2, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(inner))
	if n > 0 {
		head = protowire.AppendTag(head, 1, protowire.BytesType)
		head = protowire.AppendVarint(head, uint64(n))
	}
	w.buf.Write(tail)
	b := w.buf.Bytes()
	start := headroom - len(head)
	copy(b[start:], head)
	return b[start:], b[headroom : headroom+n]
}

// wireForms maps a batch message being sent to the wire form an encoder
// wrote for it.
var wireForms sync.Map // *agnesv1.QueryStreamResponse → []byte

// sendWire sends msg through send, letting the codec use wire as its
// encoding.
func sendWire(send func(*agnesv1.QueryStreamResponse) error, msg *agnesv1.QueryStreamResponse, wire []byte) error {
	wireForms.Store(msg, wire)
	defer wireForms.Delete(msg)
	return send(msg)
}

// Codec is the Query service's protobuf codec: connect's, except that a batch
// message with a wire form written by an encoder is sent as those bytes. It
// has no MarshalAppend on purpose: connect would then copy the bytes into a
// buffer of its own.
func Codec() connect.Codec { return codec{} }

type codec struct{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(m any) ([]byte, error) {
	if wire, ok := wireForms.Load(m); ok {
		return wire.([]byte), nil
	}
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("marshal: %T is not a proto.Message", m)
	}
	return proto.Marshal(pm)
}

func (codec) Unmarshal(data []byte, m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return fmt.Errorf("unmarshal: %T is not a proto.Message", m)
	}
	return proto.Unmarshal(data, pm)
}

func (codec) IsBinary() bool { return true }
