package querysvc

import (
	"bytes"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
)

// arrowStream turns engine batches into Arrow IPC messages: the schema message
// first, then each record batch (with any dictionary batches it needs) as one
// QueryBatch. Concatenated, they form an Arrow IPC stream (add the end-of-stream
// marker), which is what the SDK hands to ipc.NewReader.
//
// Encoding and sending happen on a goroutine of their own, so DuckDB computes the
// next batch while the previous one goes out; at most sendAhead batches wait.
type arrowStream struct {
	send   func(*agnesv1.QueryStreamResponse) error
	schema *arrow.Schema
	w      *ipc.Writer
	pw     *payloads
	bytes  int64

	queue  chan arrow.RecordBatch
	sent   chan struct{}
	failed atomic.Pointer[error]
}

const sendAhead = 4

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

func (a *arrowStream) Schema(s *arrow.Schema) error {
	a.schema = s
	a.pw = &payloads{}
	a.w = ipc.NewWriterWithPayloadWriter(a.pw, ipc.WithSchema(s), ipc.WithAllocator(memory.DefaultAllocator))
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

// Batch implements engine.ArrowSink: the batch is kept (Retain) and queued for the
// sender, which releases it once sent.
func (a *arrowStream) Batch(rec arrow.RecordBatch) error {
	if p := a.failed.Load(); p != nil {
		return *p
	}
	if a.queue == nil {
		a.queue, a.sent = make(chan arrow.RecordBatch, sendAhead), make(chan struct{})
		go a.sender(a.queue, a.sent)
	}
	rec.Retain()
	a.queue <- rec
	return nil
}

func (a *arrowStream) sender(queue <-chan arrow.RecordBatch, sent chan<- struct{}) {
	defer close(sent)
	for rec := range queue {
		if a.failed.Load() == nil {
			if err := a.sendBatch(rec); err != nil {
				a.failed.Store(&err)
			}
		}
		rec.Release()
	}
}

func (a *arrowStream) sendBatch(rec arrow.RecordBatch) error {
	a.pw.buf.Reset()
	if err := a.w.Write(rec); err != nil {
		return err
	}
	// Send marshals the message before returning, so the buffer can be reused.
	data := a.pw.buf.Bytes()
	a.bytes += int64(len(data))
	return a.send(&agnesv1.QueryStreamResponse{Event: &agnesv1.QueryStreamResponse_Batch{Batch: &agnesv1.QueryBatch{
		ArrowBatch: data, RowCount: rec.NumRows(),
	}}})
}

// drain waits until every queued batch is sent and reports a send failure.
func (a *arrowStream) drain() error {
	if a.queue != nil {
		close(a.queue)
		<-a.sent
		a.queue = nil
	}
	if p := a.failed.Load(); p != nil {
		return *p
	}
	return nil
}
