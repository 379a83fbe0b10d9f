// Package querysvc implements agnes.v1.QueryService: sandboxed, RBAC-checked SQL over
// the master analytics views, answered whole (Query) or streamed (QueryStream).
package querysvc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/engine"
	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/restjson"
	"github.com/agnesdata/agnes/server/internal/sqlguard"
	"github.com/agnesdata/agnes/server/internal/store"
)

// Limits bound one query.
type Limits struct {
	MaxRows int64
	// MaxBytes bounds a result: the encoded rows a unary answer holds, the
	// Arrow data a stream reads.
	MaxBytes int64
	Timeout  time.Duration
	// PerUser is the engine's cap on one user's queries at once (for its
	// error message).
	PerUser int
	// MaxBodyBytes bounds a REST request body (the plain routes read theirs).
	MaxBodyBytes int64
}

// Service implements QueryService (see Handler) and its REST routes.
type Service struct {
	engine *engine.Engine
	guard  *sqlguard.Checker
	limits Limits
	checks *checkCache
	json   *restjson.Marshaler // REST request bodies
}

// New returns the service.
func New(eng *engine.Engine, guard *sqlguard.Checker, limits Limits) *Service {
	if limits.MaxBytes <= 0 {
		limits.MaxBytes = math.MaxInt64
	}
	if limits.MaxBodyBytes <= 0 {
		limits.MaxBodyBytes = 10 << 20
	}
	services := []protoreflect.ServiceDescriptor{agnesv1.File_agnes_v1_query_proto.Services().ByName("QueryService")}
	return &Service{engine: eng, guard: guard, limits: limits, checks: newCheckCache(4096), json: restjson.New(services)}
}

// Defaults of the request options.
const (
	defaultQueryLimit = 1000
	defaultBatchRows  = 1000
	maxBatchRows      = 100_000
	maxSQLBytes       = 1 << 20
)

// catalog lets the sandbox resolve table references against the views of the
// engine's current generation.
type catalog struct{ e *engine.Engine }

func (c catalog) View(name string) (string, bool) { return c.e.LookupView(name) }

// authorize is the sandbox (layers 1–2) and table RBAC (layer 3); the engine's
// hardened DuckDB settings are layer 4. It returns the SQL to run: the query,
// or the query with its list and string builders guarded.
func (s *Service) authorize(ctx context.Context, query string) (string, error) {
	if strings.TrimSpace(query) == "" {
		return "", apierr.InvalidArgument("sql is required")
	}
	if len(query) > maxSQLBytes {
		return "", apierr.InvalidArgument("sql is longer than the limit of %d bytes", maxSQLBytes)
	}
	p := auth.FromContext(ctx)
	checked, err := s.check(ctx, query)
	var rejected *sqlguard.Error
	switch {
	case errors.As(err, &rejected) && rejected.Reason == sqlguard.UnknownTable && !p.IsAdmin:
		// The same answer as a table that exists but is not granted: a user
		// learns nothing about which tables exist.
		return "", access.CheckResource(p, store.ResourceTable, rejected.Name)
	case errors.As(err, &rejected):
		return "", apierr.InvalidArgument("%s", rejected.Message)
	case err != nil:
		return "", err
	}
	for _, table := range checked.Tables {
		if err := access.CheckResource(p, store.ResourceTable, table); err != nil {
			return "", err
		}
	}
	return checked.SQL, nil
}

// check runs the sandbox (or reuses its verdict for this text and generation).
func (s *Service) check(ctx context.Context, query string) (sqlguard.Checked, error) {
	gen := s.engine.Generation()
	if checked, ok := s.checks.get(query, gen); ok {
		return checked, nil
	}
	checked, err := s.guard.Check(ctx, query, catalog{s.engine})
	var rejected *sqlguard.Error
	if errors.As(err, &rejected) {
		return checked, err
	}
	if err != nil {
		return checked, fmt.Errorf("sandbox check: %w", err)
	}
	s.checks.put(query, gen, checked)
	return checked, nil
}

func (s *Service) options(ctx context.Context, limit int64) engine.RunOptions {
	rows := s.limits.MaxRows
	if limit > 0 && limit < rows {
		rows = limit
	}
	return engine.RunOptions{User: auth.FromContext(ctx).UserID, MaxRows: rows, MaxBytes: s.limits.MaxBytes, Timeout: s.limits.Timeout}
}

// queryError converts engine errors to API errors with messages a user can act on.
func (s *Service) queryError(err error) error {
	var qe *engine.QueryError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &qe):
		return apierr.InvalidArgument("%s", qe.Message)
	case errors.Is(err, engine.ErrTooManyQueries):
		return apierr.ResourceExhausted("too many queries running for you at once (the limit is %d); wait for one to finish", s.limits.PerUser)
	case errors.Is(err, engine.ErrTimeout):
		return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("query exceeded the time limit of %s", s.limits.Timeout))
	case errors.Is(err, engine.ErrCanceled):
		return connect.NewError(connect.CodeCanceled, errors.New("query canceled"))
	case errors.Is(err, engine.ErrInvalidQuery):
		return apierr.InvalidArgument("only a single SELECT statement is allowed")
	case errors.Is(err, engine.ErrNotLoaded), errors.Is(err, engine.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, errors.New("the analytics database is not available yet"))
	}
	return err
}

// query runs a unary Query into an answer in the given form.
func (s *Service) query(ctx context.Context, req *agnesv1.QueryRequest, f form) (*answer, error) {
	if req.GetLimit() < 0 {
		return nil, apierr.InvalidArgument("limit must not be negative, got %d", req.GetLimit())
	}
	query, err := s.authorize(ctx, req.GetSql())
	if err != nil {
		return nil, err
	}
	limit := req.GetLimit()
	if limit == 0 {
		limit = defaultQueryLimit
	}
	opts := s.options(ctx, limit)
	opts.MaxBytes = math.MaxInt64 // the answer counts its encoded bytes itself
	a := &answer{form: f, maxBytes: s.limits.MaxBytes}
	sum, err := s.engine.RunArrow(ctx, query, opts, a)
	if derr := a.drain(); err == nil || errors.Is(err, errAnswerFull) {
		err = derr
	}
	if err != nil {
		return nil, s.queryError(err)
	}
	if sum.Truncated != engine.NotTruncated {
		a.truncated = true
	}
	return a, nil
}

// queryRPC is Query over Connect, gRPC and gRPC-Web: the answer in the form
// the request's Content-Type asks for.
func (s *Service) queryRPC(ctx context.Context, req *connect.Request[agnesv1.QueryRequest]) (*connect.Response[message], error) {
	f := formOf(req.Header())
	a, err := s.query(ctx, req.Msg, f)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&message{form: f, wire: a.encoded()}), nil
}

// queryStreamRPC is QueryStream over Connect, gRPC and gRPC-Web.
func (s *Service) queryStreamRPC(ctx context.Context, req *connect.Request[agnesv1.QueryStreamRequest], stream *connect.ServerStream[message]) error {
	return s.stream(ctx, req.Msg, &connectStream{stream: stream, form: formOf(req.Header())})
}

// streamOut is where a stream's messages go.
type streamOut interface {
	// send sends a message as it is (schema, Arrow batches, summary).
	send(*agnesv1.QueryStreamResponse) error
	// frame is how a batch of JSON-format rows is framed; sendEncoded sends one.
	frame() batchFrame
	sendEncoded([]byte) error
}

// connectStream sends a stream over Connect, gRPC or gRPC-Web.
type connectStream struct {
	stream *connect.ServerStream[message]
	form   form
}

func (c *connectStream) send(m *agnesv1.QueryStreamResponse) error {
	return c.stream.Send(&message{msg: m})
}

func (c *connectStream) frame() batchFrame {
	if c.form == formJSON {
		return frameJSON
	}
	return frameProto
}

func (c *connectStream) sendEncoded(b []byte) error {
	return c.stream.Send(&message{form: c.form, wire: b})
}

// streamSink is a stream's engine sink: Arrow IPC or JSON rows.
type streamSink interface {
	engine.ArrowSink
	drain() error // waits until everything is sent
	sent() int64  // payload bytes sent
}

// stream runs a streamed query and sends its messages to out.
func (s *Service) stream(ctx context.Context, req *agnesv1.QueryStreamRequest, out streamOut) error {
	if req.GetLimit() < 0 {
		return apierr.InvalidArgument("limit must not be negative, got %d", req.GetLimit())
	}
	if req.GetBatchRows() < 0 || req.GetBatchRows() > maxBatchRows {
		return apierr.InvalidArgument("batch_rows must be between 0 and %d, got %d", maxBatchRows, req.GetBatchRows())
	}
	query, err := s.authorize(ctx, req.GetSql())
	if err != nil {
		return err
	}
	format := req.GetFormat()
	if format == agnesv1.ResultFormat_RESULT_FORMAT_UNSPECIFIED {
		format = agnesv1.ResultFormat_RESULT_FORMAT_ARROW
		if reqctx.From(ctx).Via == "rest" {
			format = agnesv1.ResultFormat_RESULT_FORMAT_JSON
		}
	}
	var sink streamSink = &arrowStream{send: out.send}
	if format != agnesv1.ResultFormat_RESULT_FORMAT_ARROW {
		rows := int(req.GetBatchRows())
		if rows == 0 {
			rows = defaultBatchRows
		}
		sink = &rowStream{out: out, frame: out.frame(), rows: rows}
	}
	sum, err := s.engine.RunArrow(ctx, query, s.options(ctx, req.GetLimit()), sink)
	if derr := sink.drain(); err == nil { // the rows are sent before the summary
		err = derr
	}
	if err != nil {
		return s.queryError(err)
	}
	return out.send(&agnesv1.QueryStreamResponse{Event: &agnesv1.QueryStreamResponse_Summary{Summary: &agnesv1.QuerySummary{
		Rows: sum.Rows, Bytes: sink.sent(), ElapsedMs: sum.Elapsed.Milliseconds(), Truncated: sum.Truncated != engine.NotTruncated,
	}}})
}
