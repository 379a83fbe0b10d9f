package querysvc

import (
	"encoding/binary"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"google.golang.org/protobuf/encoding/protowire"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/engine"
	"github.com/agnesdata/agnes/server/internal/ordered"
)

// form is a wire form of an answer: JSON (REST, and Connect or gRPC clients
// that speak JSON) or protobuf.
type form uint8

const (
	formProto form = iota
	formJSON
)

func (f form) String() string {
	if f == formJSON {
		return "JSON"
	}
	return "protobuf"
}

// fieldRows is the rows field of both QueryResponse and QueryBatch.
const fieldRows = 2

var (
	tagRows       = byte(protowire.EncodeTag(fieldRows, protowire.BytesType))
	tagListValues = byte(protowire.EncodeTag(1, protowire.BytesType)) // ListValue.values
)

// rowEncoder writes rows of one record batch in one form, straight from the
// Arrow columns: each column's reader is chosen once per batch.
type rowEncoder struct {
	form form
	cols []cellReader
	// lenRoom is the room kept for a protobuf row's length: the size of the
	// previous row's, so that rows of similar sizes are written in one pass.
	lenRoom int
}

func newRowEncoder(rec arrow.RecordBatch, types []string, f form) *rowEncoder {
	n := int(rec.NumCols())
	e := &rowEncoder{form: f, cols: make([]cellReader, n), lenRoom: 1}
	for c := range e.cols {
		typ := ""
		if c < len(types) {
			typ = types[c]
		}
		e.cols[c] = newReader(rec.Column(c), typ)
	}
	return e
}

// appendRow writes row i: a JSON array, or a protobuf ListValue as field
// fieldRows (tag, length, values).
func (e *rowEncoder) appendRow(buf []byte, i int) []byte {
	if e.form == formJSON {
		buf = append(buf, '[')
		for c, read := range e.cols {
			if c > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSON(buf, read(i))
		}
		return append(buf, ']')
	}
	// The values are written after room for the row's length, and moved if
	// the length turns out to need more or less room than kept.
	buf = append(buf, tagRows)
	at := len(buf)
	buf = append(buf, lenPad[:e.lenRoom]...)
	for _, read := range e.cols {
		buf = appendProtoCell(buf, read(i))
	}
	n := len(buf) - at - e.lenRoom
	if need := protowire.SizeVarint(uint64(n)); need != e.lenRoom {
		body := at + e.lenRoom
		if need > e.lenRoom {
			buf = append(buf, lenPad[:need-e.lenRoom]...)
		}
		copy(buf[at+need:], buf[body:body+n])
		buf = buf[:at+need+n]
		e.lenRoom = need
	}
	putVarint(buf[at:at+e.lenRoom], n)
	return buf
}

// lenPad is room for a varint.
var lenPad [binary.MaxVarintLen64]byte

// putVarint writes n as a varint that fills b exactly.
func putVarint(b []byte, n int) {
	last := len(b) - 1
	for k := range last {
		b[k] = byte(n) | 0x80
		n >>= 7
	}
	b[last] = byte(n)
}

// appendRows writes rows [from, to): JSON arrays separated by commas (one
// before the first too if comma), or consecutive protobuf rows fields.
func (e *rowEncoder) appendRows(buf []byte, from, to int, comma bool) []byte {
	for i := from; i < to; i++ {
		if e.form == formJSON && (comma || i > from) {
			buf = append(buf, ',')
		}
		buf = e.appendRow(buf, i)
	}
	return buf
}

// A stream sends rows in batches of up to batch_rows rows (never more than
// one of DuckDB's chunks), each a message of its own, framed for where the
// stream goes.
type batchFrame uint8

const (
	frameProto  batchFrame = iota // QueryStreamResponse{batch: {rows, row_count}}, protobuf
	frameJSON                     // the same as JSON (Connect and gRPC JSON clients)
	frameNDJSON                   // the REST mirror's line: {"result": {"batch": {...}}}
)

func (f batchFrame) form() form {
	if f == frameProto {
		return formProto
	}
	return formJSON
}

var (
	jsonBatchStart   = []byte(`{"batch":{"rows":[`)
	ndjsonBatchStart = []byte(`{"result":{"batch":{"arrow_batch":"","rows":[`)
)

// headroom is where a batch message's start goes, once the rows' length is
// known: the longest of the JSON starts, or protobuf's tag and length.
const headroom = 48

// encodeBatch writes rows [from, to) of a record as one stream message. The
// buffer is the message's own, freshly allocated: it goes to connect, or to
// the response writer, and is never written again.
func encodeBatch(e *rowEncoder, frame batchFrame, from, to int) []byte {
	buf := make([]byte, headroom, headroom+(to-from)*64+32)
	buf = e.appendRows(buf, from, to, false)
	n := int64(to - from)
	var start []byte
	switch frame {
	case frameProto:
		// QueryStreamResponse.batch (2) {rows (2)..., row_count (3)}.
		buf = protowire.AppendTag(buf, 3, protowire.VarintType)
		buf = protowire.AppendVarint(buf, uint64(n))
		start = protowire.AppendTag(nil, 2, protowire.BytesType)
		start = protowire.AppendVarint(start, uint64(len(buf)-headroom))
	case frameJSON:
		buf = append(append(buf, `],"row_count":`...), strconv.AppendInt(nil, n, 10)...)
		buf = append(buf, "}}"...)
		start = jsonBatchStart
	case frameNDJSON:
		buf = append(append(buf, `],"row_count":`...), strconv.AppendInt(nil, n, 10)...)
		buf = append(buf, "}}}\n"...)
		start = ndjsonBatchStart
	}
	at := headroom - len(start)
	copy(buf[at:], start)
	return buf[at:]
}

// rowStream is the JSON format of a stream: the DuckDB column types in the
// schema, then the rows in batches, encoded by two workers while DuckDB
// computes the next ones and sent in order by one goroutine (so memory
// stays bounded).
type rowStream struct {
	out   streamOut
	frame batchFrame
	rows  int // batch_rows
	types []string
	bytes int64
	pipe  *ordered.Pipeline[arrow.RecordBatch, [][]byte]
}

const rowEncoders = 2

// Columns implements engine.ColumnSink: the JSON format names DuckDB's types.
func (r *rowStream) Columns(cols []engine.Column) error {
	schema := &agnesv1.QuerySchema{Format: agnesv1.ResultFormat_RESULT_FORMAT_JSON, Columns: []*agnesv1.Column{}}
	for _, c := range cols {
		schema.Columns = append(schema.Columns, &agnesv1.Column{Name: c.Name, Type: c.Type})
		r.types = append(r.types, c.Type)
	}
	return r.out.send(&agnesv1.QueryStreamResponse{Event: &agnesv1.QueryStreamResponse_Schema{Schema: schema}})
}

// Schema implements engine.ArrowSink (the columns were sent by Columns).
func (r *rowStream) Schema(*arrow.Schema) error {
	r.pipe = &ordered.Pipeline[arrow.RecordBatch, [][]byte]{Workers: rowEncoders, Ahead: sendAhead, Work: r.encode, Emit: r.emit}
	return nil
}

// Batch implements engine.ArrowSink: the batch is kept (Retain) until encoded.
func (r *rowStream) Batch(rec arrow.RecordBatch) error {
	rec.Retain()
	if err := r.pipe.Push(rec); err != nil {
		rec.Release()
		return err
	}
	return nil
}

// encode writes a record as messages of up to batch_rows rows, and releases it.
func (r *rowStream) encode(rec arrow.RecordBatch) [][]byte {
	defer rec.Release()
	e := newRowEncoder(rec, r.types, r.frame.form())
	total := int(rec.NumRows())
	msgs := make([][]byte, 0, (total+r.rows-1)/r.rows)
	for start := 0; start < total; start += r.rows {
		msgs = append(msgs, encodeBatch(e, r.frame, start, min(start+r.rows, total)))
	}
	return msgs
}

func (r *rowStream) emit(msgs [][]byte) error {
	for _, m := range msgs {
		r.bytes += int64(len(m))
		if err := r.out.sendEncoded(m); err != nil {
			return err
		}
	}
	return nil
}

// drain waits until every queued batch is sent and reports a failure.
func (r *rowStream) drain() error {
	if r.pipe == nil {
		return nil
	}
	return r.pipe.Drain()
}

func (r *rowStream) sent() int64 { return r.bytes }
