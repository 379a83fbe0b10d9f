package querysvc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/restjson"
	"github.com/agnesdata/agnes/server/internal/route"
)

// The REST routes of the Query service are served here rather than through
// the gateway (as plain routes, under the RPCs' policies): through it every
// value would become a protobuf Value, cross the in-memory hop and be
// re-encoded by protojson, which made JSON results dozens of times slower than
// Arrow and held several copies of each answer.

// QueryREST answers POST /api/query with the JSON the REST mirror always
// wrote ({"columns", "rows", "row_count", "truncated", "column_types"},
// proto field names, row_count a number), with rows written straight from
// DuckDB's Arrow batches. The whole answer is encoded before anything is
// written, so an error (returned, not written: a *connect.Error, or an
// *http.MaxBytesError for a body over the limit) still gets its status.
func (s *Service) QueryREST(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	reqctx.From(ctx).Via = "rest"
	req := &agnesv1.QueryRequest{}
	if err := readJSON(w, r, s.json, s.limits.MaxBodyBytes, req); err != nil {
		return err
	}
	a, err := s.query(ctx, req, formJSON, false) // written chunk by chunk
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.FormatInt(a.size(), 10))
	w.WriteHeader(http.StatusOK)
	_, _ = a.WriteTo(w) // a failed write is a client gone: there is no one left to tell
	return nil
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

// QueryStreamREST answers POST /api/query/stream with the same
// newline-delimited JSON the REST mirror would write for QueryStream
// ({"result": {...}} per message), rows written straight from DuckDB's Arrow
// batches. An error before the first line is returned (and gets its status);
// one after it is written as the gateway writes it, {"error": {...}}, and
// returned for the access log.
func (s *Service) QueryStreamREST(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	reqctx.From(ctx).Via = "rest"
	req := &agnesv1.QueryStreamRequest{}
	if err := readJSON(w, r, s.json, s.limits.MaxBodyBytes, req); err != nil {
		return err
	}
	out := &ndjson{w: bufio.NewWriterSize(w, 256<<10), json: s.json}
	if f, ok := w.(http.Flusher); ok {
		out.flush = f.Flush
	}
	err := s.stream(ctx, req, out)
	if err != nil && !out.started {
		return err
	}
	if err != nil {
		ce := apierr.Convert(ctx, err)
		_ = out.line(`{"error":{"code":` + strconv.Itoa(int(ce.Code())) + `,"message":` + string(appendString(nil, ce.Message())) + `,"details":[]}}` + "\n")
	}
	out.end()
	return err
}

// Routes are the service's plain REST routes, under the RPCs' own policies.
func (s *Service) Routes() []route.Route {
	return []route.Route{
		{Pattern: "POST /api/query", Name: "agnes.v1.QueryService/Query",
			Policy: access.PolicyOf(agnesv1connect.QueryServiceQueryProcedure), Handler: s.QueryREST},
		{Pattern: "POST /api/query/stream", Name: "agnes.v1.QueryService/QueryStream",
			Policy: access.PolicyOf(agnesv1connect.QueryServiceQueryStreamProcedure), Handler: s.QueryStreamREST},
	}
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
