package querysvc

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strconv"

	"connectrpc.com/connect"
	"github.com/apache/arrow-go/v18/arrow"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/engine"
	"github.com/agnesdata/agnes/server/internal/ordered"
	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/restjson"
)

// StreamPattern is the REST query stream, served here rather than through the gateway.
const StreamPattern = "POST /api/query/stream"

// StreamREST answers POST /api/query/stream with the same newline-delimited JSON the
// REST mirror would write for QueryStream ({"result": {...}} per message), but rows
// go from DuckDB's Arrow batches straight to JSON bytes: through the gateway every
// value would become a protobuf Value, cross the in-memory hop and be re-encoded by
// protojson, which made JSON results dozens of times slower than Arrow. Mount behind
// the authentication middleware.
func (s *Service) StreamREST(json *restjson.Marshaler, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		info := reqctx.From(ctx)
		info.Via = "rest"
		fail := func(err error) {
			ce := apierr.Convert(ctx, err)
			info.SetRPC("agnes.v1.QueryService/QueryStream", ce.Code().String())
			apierr.WriteConnect(w, ce)
		}
		if _, err := auth.Required(ctx); err != nil {
			fail(err)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			apierr.WriteHTTP(w, http.StatusRequestEntityTooLarge, connect.CodeResourceExhausted, "request body too large")
			return
		}
		req := &agnesv1.QueryStreamRequest{}
		if err == nil {
			err = json.Unmarshal(body, req)
		}
		if err != nil {
			fail(apierr.InvalidArgument("malformed JSON body: %v", err))
			return
		}
		out := &ndjson{w: bufio.NewWriterSize(w, 256<<10), json: json, rows: int(req.GetBatchRows())}
		if f, ok := w.(http.Flusher); ok {
			out.flush = f.Flush
		}
		err = s.stream(ctx, req, out.message, out)
		if err != nil && !out.started {
			fail(err)
			return
		}
		code := "ok"
		if err != nil {
			ce := apierr.Convert(ctx, err)
			code = ce.Code().String()
			out.line(`{"error":{"code":` + strconv.Itoa(int(ce.Code())) + `,"message":` + string(appendString(nil, ce.Message())) + `,"details":[]}}`)
		}
		info.SetRPC("agnes.v1.QueryService/QueryStream", code)
		out.end()
	})
}

// ndjson writes stream messages as the gateway does, one {"result": ...} per line.
// Row batches are encoded by two workers while DuckDB produces the next ones, and
// written in order by one goroutine (ordered.Pipeline), so memory stays bounded.
type ndjson struct {
	w       *bufio.Writer
	flush   func()
	json    *restjson.Marshaler
	rows    int
	types   []string
	started bool
	bytes   int64
	pipe    *ordered.Pipeline[arrow.RecordBatch, []byte]
}

const jsonEncoders = 2

func (n *ndjson) line(s string) {
	n.drain()
	n.started = true
	_, _ = n.w.WriteString(s)
	_ = n.w.WriteByte('\n')
}

func (n *ndjson) message(m *agnesv1.QueryStreamResponse) error {
	raw, err := n.json.Marshal(m)
	if err != nil {
		return err
	}
	n.line(`{"result":` + string(raw) + `}`)
	return n.drain()
}

func (n *ndjson) end() {
	n.drain()
	_ = n.w.Flush()
	if n.flush != nil {
		n.flush()
	}
}

// drain waits until every queued batch is written (before a message that must come
// after them, and before the handler returns).
func (n *ndjson) drain() error {
	if n.pipe == nil {
		return nil
	}
	return n.pipe.Drain()
}

// Columns implements engine.ColumnSink: the JSON format names DuckDB's types.
func (n *ndjson) Columns(cols []engine.Column) error {
	schema := &agnesv1.QuerySchema{Format: agnesv1.ResultFormat_RESULT_FORMAT_JSON, Columns: []*agnesv1.Column{}}
	for _, c := range cols {
		schema.Columns = append(schema.Columns, &agnesv1.Column{Name: c.Name, Type: c.Type})
		n.types = append(n.types, c.Type)
	}
	return n.message(&agnesv1.QueryStreamResponse{Event: &agnesv1.QueryStreamResponse_Schema{Schema: schema}})
}

// Schema implements engine.ArrowSink (the columns were written by Columns).
func (n *ndjson) Schema(*arrow.Schema) error {
	n.pipe = &ordered.Pipeline[arrow.RecordBatch, []byte]{Workers: jsonEncoders, Ahead: sendAhead, Work: n.lines, Emit: n.write}
	return nil
}

// Batch implements engine.ArrowSink: the batch is kept (Retain) until encoded.
func (n *ndjson) Batch(rec arrow.RecordBatch) error {
	n.started = true
	rec.Retain()
	if err := n.pipe.Push(rec); err != nil {
		rec.Release()
		return err
	}
	return nil
}

// lines encodes a batch as one line per batch_rows rows, and releases it.
func (n *ndjson) lines(rec arrow.RecordBatch) []byte {
	defer rec.Release()
	per := n.rows
	if per <= 0 {
		per = defaultBatchRows
	}
	total := int(rec.NumRows())
	enc := newRowEncoder(rec, n.types)
	b := make([]byte, 0, total*64+128)
	for start := 0; start < total; start += per {
		end := min(start+per, total)
		b = append(b, `{"result":{"batch":{"arrow_batch":"","rows":[`...)
		for i := start; i < end; i++ {
			if i > start {
				b = append(b, ',')
			}
			b = enc.appendRow(b, i)
		}
		b = append(b, `],"row_count":`...)
		b = strconv.AppendInt(b, int64(end-start), 10)
		b = append(b, "}}}\n"...)
	}
	return b
}

func (n *ndjson) write(b []byte) error {
	n.bytes += int64(len(b))
	if _, err := n.w.Write(b); err != nil {
		return err
	}
	if n.w.Buffered() > 128<<10 {
		if err := n.w.Flush(); err != nil {
			return err
		}
		if n.flush != nil {
			n.flush()
		}
	}
	return nil
}
