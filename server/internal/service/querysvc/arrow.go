package querysvc

import (
	"bytes"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
)

// arrowStream turns engine batches into Arrow IPC messages: the schema message
// first, then each record batch as one QueryBatch. Concatenated, they form an Arrow
// IPC stream (add the end-of-stream marker), which is what the SDK hands to
// ipc.NewReader.
//
// Batches are encoded by two workers while DuckDB computes the next ones, and sent in
// order by one goroutine. A schema with dictionary columns (DuckDB ENUMs) is encoded
// by one stateful IPC writer instead, which also emits the dictionary batches.
type arrowStream struct {
	send  func(*agnesv1.QueryStreamResponse) error
	w     *ipc.Writer // dictionary schemas only
	pw    *payloads
	bytes int64
	pipe  *ordered[arrow.RecordBatch, encodedBatch]
}

type encodedBatch struct {
	data []byte
	rows int64
	err  error
}

const (
	arrowEncoders = 2
	sendAhead     = 4
)

// payloads collects what the IPC writer emits for one Write; the writer's own
// schema message is dropped because it was sent first, on its own.
type payloads struct {
	buf        bytes.Buffer
	seenSchema bool
}

func (p *payloads) Start() error { return nil }
func (p *payloads) Close() error { return nil }

func (p *payloads) WritePayload(pl ipc.Payload) error {
	if !p.seenSchema {
		p.seenSchema = true
		return nil
	}
	_, err := pl.WritePayload(&p.buf)
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
	workers, encode := arrowEncoders, encodeBatch
	if hasDictionary(s) {
		a.pw = &payloads{}
		a.w = ipc.NewWriterWithPayloadWriter(a.pw, ipc.WithSchema(s), ipc.WithAllocator(memory.DefaultAllocator))
		workers, encode = 1, a.encodeWithDictionaries
	}
	a.pipe = &ordered[arrow.RecordBatch, encodedBatch]{workers: workers, ahead: sendAhead, encode: encode, emit: a.emit}
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
	return a.send(&agnesv1.QueryStreamResponse{Event: &agnesv1.QueryStreamResponse_Schema{Schema: out}})
}

// Batch implements engine.ArrowSink: the batch is kept (Retain) until encoded.
func (a *arrowStream) Batch(rec arrow.RecordBatch) error {
	rec.Retain()
	return a.pipe.push(rec)
}

// encodeBatch writes one record batch as an IPC message and releases it.
func encodeBatch(rec arrow.RecordBatch) encodedBatch {
	defer rec.Release()
	pl, err := ipc.GetRecordBatchPayload(rec, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return encodedBatch{err: err}
	}
	defer pl.Release()
	var buf bytes.Buffer
	buf.Grow(int(recordBytes(rec)) + 1024)
	if _, err := pl.WritePayload(&buf); err != nil {
		return encodedBatch{err: err}
	}
	return encodedBatch{data: buf.Bytes(), rows: rec.NumRows()}
}

func (a *arrowStream) encodeWithDictionaries(rec arrow.RecordBatch) encodedBatch {
	defer rec.Release()
	a.pw.buf.Reset()
	if err := a.w.Write(rec); err != nil {
		return encodedBatch{err: err}
	}
	return encodedBatch{data: bytes.Clone(a.pw.buf.Bytes()), rows: rec.NumRows()}
}

func (a *arrowStream) emit(b encodedBatch) error {
	if b.err != nil {
		return b.err
	}
	a.bytes += int64(len(b.data))
	return a.send(&agnesv1.QueryStreamResponse{Event: &agnesv1.QueryStreamResponse_Batch{Batch: &agnesv1.QueryBatch{
		ArrowBatch: b.data, RowCount: b.rows,
	}}})
}

// drain waits until every queued batch is sent and reports a failure.
func (a *arrowStream) drain() error {
	if a.pipe == nil {
		return nil
	}
	return a.pipe.drain()
}

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
