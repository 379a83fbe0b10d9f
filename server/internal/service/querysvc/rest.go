package querysvc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"connectrpc.com/connect"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/restjson"
)

// The REST routes of the Query service are served here rather than through
// the gateway: through it every value would become a protobuf Value, cross
// the in-memory hop and be re-encoded by protojson, which made JSON results
// dozens of times slower than Arrow and held several copies of each answer.
const (
	QueryPattern  = "POST /api/query"
	StreamPattern = "POST /api/query/stream"
)

// Procedures, for the access log.
const (
	queryProcedure  = "agnes.v1.QueryService/Query"
	streamProcedure = "agnes.v1.QueryService/QueryStream"
)

// QueryREST answers POST /api/query with the JSON the REST mirror always
// wrote ({"columns", "rows", "row_count", "truncated", "column_types"},
// proto field names, row_count a number), with rows written straight from
// DuckDB's Arrow batches. The whole answer is encoded before anything is
// written, so an error (returned, not written: a *connect.Error, or an
// *http.MaxBytesError for a body over the limit) still gets its status.
// Mount behind the authentication middleware.
func (s *Service) QueryREST(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	reqctx.From(ctx).Via = "rest"
	if _, err := auth.Required(ctx); err != nil {
		return err
	}
	req := &agnesv1.QueryRequest{}
	if err := readJSON(w, r, s.json, s.limits.MaxBodyBytes, req); err != nil {
		return err
	}
	a, err := s.query(ctx, req, formJSON)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.FormatInt(a.size(), 10))
	w.WriteHeader(http.StatusOK)
	_, _ = a.WriteTo(w) // a failed write is a client gone: there is no one left to tell
	return nil
}

// QueryHandler serves QueryREST with the error mapping and access-log
// outcome every REST route has.
// TODO(lead): replace by the plain-route adapter.
func (s *Service) QueryHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, queryProcedure, s.QueryREST(w, r))
	})
}

// writeError writes err as a REST error and records the outcome.
func writeError(w http.ResponseWriter, r *http.Request, procedure string, err error) {
	info := reqctx.From(r.Context())
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		info.SetRPC(procedure, "ok")
	case errors.As(err, &mbe):
		info.SetRPC(procedure, connect.CodeResourceExhausted.String())
		apierr.WriteHTTP(w, http.StatusRequestEntityTooLarge, connect.CodeResourceExhausted,
			fmt.Sprintf("request body too large (max %d bytes)", mbe.Limit))
	default:
		ce := apierr.Convert(r.Context(), err)
		info.SetRPC(procedure, ce.Code().String())
		apierr.WriteConnect(w, ce)
	}
}

// readJSON reads a REST request body of at most max bytes into msg (an
// empty body is an empty message, as through the gateway).
func readJSON(w http.ResponseWriter, r *http.Request, json *restjson.Marshaler, max int64, msg any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return fmt.Errorf("read request body: %w", mbe)
	case err != nil:
		return apierr.InvalidArgument("could not read request body")
	case len(bytes.TrimSpace(body)) == 0:
		return nil
	}
	if err := json.Unmarshal(body, msg); err != nil {
		return apierr.InvalidArgument("malformed JSON body: %v", err)
	}
	return nil
}

// StreamREST answers POST /api/query/stream with the same newline-delimited
// JSON the REST mirror would write for QueryStream ({"result": {...}} per
// message), rows written straight from DuckDB's Arrow batches. Mount behind
// the authentication middleware.
func (s *Service) StreamREST(json *restjson.Marshaler, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		reqctx.From(ctx).Via = "rest"
		if _, err := auth.Required(ctx); err != nil {
			writeError(w, r, streamProcedure, err)
			return
		}
		req := &agnesv1.QueryStreamRequest{}
		if err := readJSON(w, r, json, maxBody, req); err != nil {
			writeError(w, r, streamProcedure, err)
			return
		}
		out := &ndjson{w: bufio.NewWriterSize(w, 256<<10), json: json}
		if f, ok := w.(http.Flusher); ok {
			out.flush = f.Flush
		}
		err := s.stream(ctx, req, out)
		if err != nil && !out.started {
			writeError(w, r, streamProcedure, err)
			return
		}
		code := "ok"
		if err != nil {
			ce := apierr.Convert(ctx, err)
			code = ce.Code().String()
			out.line(`{"error":{"code":` + strconv.Itoa(int(ce.Code())) + `,"message":` + string(appendString(nil, ce.Message())) + `,"details":[]}}` + "\n")
		}
		reqctx.From(ctx).SetRPC(streamProcedure, code)
		out.end()
	})
}

// ndjson writes stream messages as the gateway does, one {"result": ...}
// per line; row batches come encoded as such lines (frameNDJSON).
type ndjson struct {
	w       *bufio.Writer
	flush   func()
	json    *restjson.Marshaler
	started bool
}

func (n *ndjson) frame() batchFrame { return frameNDJSON }

func (n *ndjson) send(m *agnesv1.QueryStreamResponse) error {
	raw, err := n.json.Marshal(m)
	if err != nil {
		return err
	}
	return n.line(`{"result":` + string(raw) + "}\n")
}

func (n *ndjson) line(s string) error {
	n.started = true
	_, err := n.w.WriteString(s)
	return err
}

// sendEncoded writes lines, flushing now and then so the client sees
// progress.
func (n *ndjson) sendEncoded(b []byte) error {
	n.started = true
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

func (n *ndjson) end() {
	_ = n.w.Flush()
	if n.flush != nil {
		n.flush()
	}
}
