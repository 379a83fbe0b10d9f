package querysvc

import (
	"bytes"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/protobuf/encoding/protowire"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/ordered"
)

// arrowStream turns engine batches into Arrow IPC messages: the schema message
// first, then the record batches, several to a QueryBatch (consecutive IPC
// messages, about groupBytes of them). Concatenated, they form an Arrow IPC
// stream (add the end-of-stream marker), which is what the SDK hands to
// ipc.NewReader. Grouping DuckDB's small chunks (2048 rows) keeps the cost per
// message (framing, flush, write) off a big result's path.
//
// Groups are encoded by two workers while DuckDB computes the next ones, each
// into a buffer of its own, and sent in order by one goroutine. For a
// protobuf client the workers write the whole message (QueryStreamResponse
// around the IPC bytes), which connect sends as it is (codec.go); for others
// the group goes out as a message like any other. A schema with dictionary
// columns (DuckDB ENUMs) is encoded by one stateful IPC writer instead, which
// also emits the dictionary batches.
type arrowStream struct {
	out        streamOut
	wire       bool        // the workers write protobuf messages (out.frame() is frameProto)
	w          *ipc.Writer // dictionary schemas only
	pw         *payloads
	bytes      int64
	group      []arrow.RecordBatch
	groupBytes int64
	pipe       *ordered.Pipeline[[]arrow.RecordBatch, encodedBatch]
}

// encodedBatch is a group's IPC bytes after batchHeadroom bytes of room,
// or the whole message when the stream sends wire messages.
type encodedBatch struct {
	buf  []byte
	ipc  int // bytes of IPC
	rows int64
	err  error
}

const (
	arrowEncoders = 2
	sendAhead     = 4
	// groupBytes is about how much Arrow data one QueryBatch carries.
	groupBytes = 1 << 20
)

// payloads collects what the IPC writer emits into buf; the writer's own
// schema message is dropped because it was sent first, on its own.
type payloads struct {
	buf        *bytes.Buffer
	seenSchema bool
}

func (p *payloads) Start() error { return nil }
func (p *payloads) Close() error { return nil }

func (p *payloads) WritePayload(pl ipc.Payload) error {
	if !p.seenSchema {
		p.seenSchema = true
		return nil
	}
	_, err := pl.WritePayload(p.buf)
	return err
}

func hasDictionary(s *arrow.Schema) bool {
	for _, f := range s.Fields() {
		if f.Type.ID() == arrow.DICTIONARY {
			return true
		}
	}
	return false
}

// Schema implements engine.ArrowSink.
func (a *arrowStream) Schema(s *arrow.Schema) error {
	a.wire = a.out.frame() == frameProto
	workers, encode := arrowEncoders, a.encodeGroup
	if hasDictionary(s) {
		a.pw = &payloads{}
		a.w = ipc.NewWriterWithPayloadWriter(a.pw, ipc.WithSchema(s), ipc.WithAllocator(memory.DefaultAllocator))
		workers, encode = 1, a.encodeWithDictionaries
	}
	a.pipe = &ordered.Pipeline[[]arrow.RecordBatch, encodedBatch]{Workers: workers, Ahead: sendAhead, Work: encode, Emit: a.emit}
	var msg bytes.Buffer
	pl := ipc.GetSchemaPayload(s, memory.DefaultAllocator)
	defer pl.Release()
	if _, err := pl.WritePayload(&msg); err != nil {
		return err
	}
	out := &agnesv1.QuerySchema{Format: agnesv1.ResultFormat_RESULT_FORMAT_ARROW, ArrowSchema: msg.Bytes()}
	for _, f := range s.Fields() {
		out.Columns = append(out.Columns, &agnesv1.Column{Name: f.Name, Type: f.Type.String()})
	}
	a.bytes += int64(msg.Len())
	return a.out.send(&agnesv1.QueryStreamResponse{Event: &agnesv1.QueryStreamResponse_Schema{Schema: out}})
}

// Batch implements engine.ArrowSink: the batch is kept (Retain) until encoded.
func (a *arrowStream) Batch(rec arrow.RecordBatch) error {
	rec.Retain()
	a.group = append(a.group, rec)
	a.groupBytes += recordBytes(rec)
	if a.groupBytes < groupBytes {
		return nil
	}
	return a.flush()
}

// flush queues the current group for encoding.
func (a *arrowStream) flush() error {
	if len(a.group) == 0 {
		return nil
	}
	g := a.group
	a.group, a.groupBytes = nil, 0
	if err := a.pipe.Push(g); err != nil {
		release(g)
		return err
	}
	return nil
}

func release(g []arrow.RecordBatch) {
	for _, rec := range g {
		rec.Release()
	}
}

// encodeGroup writes a group's record batches as consecutive IPC messages
// into one buffer, and releases them.
func (a *arrowStream) encodeGroup(g []arrow.RecordBatch) encodedBatch {
	defer release(g)
	buf := newGroupBuffer(g)
	var rows int64
	for _, rec := range g {
		pl, err := ipc.GetRecordBatchPayload(rec, ipc.WithAllocator(memory.DefaultAllocator))
		if err != nil {
			return encodedBatch{err: err}
		}
		_, err = pl.WritePayload(buf)
		pl.Release()
		if err != nil {
			return encodedBatch{err: err}
		}
		rows += rec.NumRows()
	}
	return a.finish(buf.Bytes(), rows)
}

func (a *arrowStream) encodeWithDictionaries(g []arrow.RecordBatch) encodedBatch {
	defer release(g)
	a.pw.buf = newGroupBuffer(g)
	var rows int64
	for _, rec := range g {
		if err := a.w.Write(rec); err != nil {
			return encodedBatch{err: err}
		}
		rows += rec.NumRows()
	}
	return a.finish(a.pw.buf.Bytes(), rows)
}

// newGroupBuffer is a group's buffer, freshly allocated (it is handed over
// and never written again), with batchHeadroom bytes of room first.
func newGroupBuffer(g []arrow.RecordBatch) *bytes.Buffer {
	return bytes.NewBuffer(make([]byte, batchHeadroom, batchHeadroom+groupSize(g)+16))
}

// finish makes a group's buffer (batchHeadroom, then the IPC bytes) what the
// stream sends: the whole message in place, or the IPC bytes.
func (a *arrowStream) finish(buf []byte, rows int64) encodedBatch {
	b := encodedBatch{ipc: len(buf) - batchHeadroom, rows: rows}
	if a.wire {
		b.buf = frameArrowBatch(buf, rows)
	} else {
		b.buf = buf[batchHeadroom:]
	}
	return b
}

// batchHeadroom is room for the tags and lengths of QueryStreamResponse.batch
// and QueryBatch.arrow_batch (at most 2 × (1 + 10) bytes).
const batchHeadroom = 24

// frameArrowBatch turns buf (batchHeadroom bytes, then a group's IPC bytes)
// into the protobuf encoding of QueryStreamResponse{batch: {arrow_batch,
// row_count}}, as proto.Marshal writes it, without moving the IPC bytes.
func frameArrowBatch(buf []byte, rows int64) []byte {
	n := len(buf) - batchHeadroom
	if rows != 0 {
		buf = protowire.AppendTag(buf, 3, protowire.VarintType) // QueryBatch.row_count
		buf = protowire.AppendVarint(buf, uint64(rows))
	}
	var head []byte
	if n > 0 {
		head = protowire.AppendTag(head, 1, protowire.BytesType) // QueryBatch.arrow_batch
		head = protowire.AppendVarint(head, uint64(n))
	}
	batch := len(head) + len(buf) - batchHeadroom
	outer := protowire.AppendTag(nil, 2, protowire.BytesType) // QueryStreamResponse.batch
	outer = protowire.AppendVarint(outer, uint64(batch))
	head = append(outer, head...)
	at := batchHeadroom - len(head)
	copy(buf[at:], head)
	return buf[at:]
}

// groupSize estimates a group's IPC size (its buffers, plus framing), to
// size the buffer once.
func groupSize(g []arrow.RecordBatch) int64 {
	var n int64
	for _, rec := range g {
		n += recordBytes(rec) + 1024
	}
	return n
}

// emit sends an encoded group.
func (a *arrowStream) emit(b encodedBatch) error {
	if b.err != nil {
		return b.err
	}
	a.bytes += int64(b.ipc)
	if a.wire {
		return a.out.sendEncoded(b.buf)
	}
	return a.out.send(&agnesv1.QueryStreamResponse{Event: &agnesv1.QueryStreamResponse_Batch{Batch: &agnesv1.QueryBatch{
		ArrowBatch: b.buf, RowCount: b.rows,
	}}})
}

// drain sends the last group, waits until every queued group is sent and
// reports a failure.
func (a *arrowStream) drain() error {
	if a.pipe == nil {
		return nil
	}
	ferr := a.flush()
	if err := a.pipe.Drain(); err != nil {
		return err
	}
	return ferr
}

func (a *arrowStream) sent() int64 { return a.bytes }

// recordBytes estimates a batch's buffer size, to size the IPC buffer once.
func recordBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, col := range rec.Columns() {
		for _, b := range col.Data().Buffers() {
			if b != nil {
				n += int64(b.Len())
			}
		}
	}
	return n
}
