// Package querysvc implements agnes.v1.QueryService: sandboxed, RBAC-checked SQL over
// the master analytics views, answered whole (Query) or streamed (QueryStream).
package querysvc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/semaphore"
	"google.golang.org/protobuf/reflect/protoreflect"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/engine"
	"github.com/agnesdata/agnes/server/internal/pushdown"
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
	// AnswerMemory bounds the unary answers the server holds at once, for
	// every user together (0: unbounded).
	AnswerMemory int64
}

// Service implements QueryService (see Handler) and its REST routes.
type Service struct {
	engine *engine.Engine
	guard  *sqlguard.Checker
	limits Limits
	checks *checkCache
	json   *restjson.Marshaler // REST request bodies
	// answers is the server's budget for held unary answers (nil: none).
	answers *semaphore.Weighted
	// remote runs queries over remote tables at their source (nil: none).
	remote *pushdown.Pushdown
}

// New returns the service; remote (may be nil) serves the tables of
// query_mode remote.
func New(eng *engine.Engine, guard *sqlguard.Checker, limits Limits, remote *pushdown.Pushdown) *Service {
	if limits.MaxBytes <= 0 {
		limits.MaxBytes = math.MaxInt64
	}
	if limits.MaxBodyBytes <= 0 {
		limits.MaxBodyBytes = 10 << 20
	}
	services := []protoreflect.ServiceDescriptor{agnesv1.File_agnes_v1_query_proto.Services().ByName("QueryService")}
	s := &Service{engine: eng, guard: guard, limits: limits, checks: newCheckCache(4096), json: restjson.New(services), remote: remote}
	if limits.AnswerMemory > 0 {
		s.answers = semaphore.NewWeighted(limits.AnswerMemory)
	}
	return s
}

// Defaults of the request options.
const (
	defaultQueryLimit = 1000
	defaultBatchRows  = 1000
	maxBatchRows      = 100_000
	maxSQLBytes       = 1 << 20
)

// catalog lets the sandbox resolve table references against the views of the
// engine's current generation and the remote tables of the registry.
type catalog struct {
	e      *engine.Engine
	remote map[string]pushdown.Table // by lower-case id
}

func (c catalog) View(name string) (string, bool) {
	if v, ok := c.e.LookupView(name); ok {
		return v, true
	}
	t, ok := c.remote[strings.ToLower(name)]
	return t.ID, ok
}

// target is where an authorized query runs: on the engine (sql), or pushed
// down to the source of its remote tables (the user's query as written).
type target struct {
	sql    string
	remote []pushdown.Table
}

// authorize is the sandbox (layers 1–2) and table RBAC (layer 3); the engine's
// hardened DuckDB settings are layer 4. It returns what to run: the query, or
// the query with its list and string builders guarded; or, for a query whose
// tables are all remote tables of one source, that query and those tables
// (remote queries pass the same sandbox and RBAC, then BigQuery's own limits).
func (s *Service) authorize(ctx context.Context, query string) (target, error) {
	if strings.TrimSpace(query) == "" {
		return target{}, apierr.InvalidArgument("sql is required")
	}
	if len(query) > maxSQLBytes {
		return target{}, apierr.InvalidArgument("sql is longer than the limit of %d bytes", maxSQLBytes)
	}
	p := auth.FromContext(ctx)
	var remotes map[string]pushdown.Table
	if s.remote != nil {
		var err error
		if remotes, err = s.remote.Tables(ctx); err != nil {
			return target{}, err
		}
	}
	checked, err := s.check(ctx, query, remotes)
	var rejected *sqlguard.Error
	switch {
	case errors.As(err, &rejected) && rejected.Reason == sqlguard.UnknownTable && !p.IsAdmin:
		// The same answer as a table that exists but is not granted: a user
		// learns nothing about which tables exist.
		return target{}, access.CheckResource(p, store.ResourceTable, rejected.Name)
	case errors.As(err, &rejected):
		return target{}, apierr.InvalidArgument("%s", rejected.Message)
	case err != nil:
		return target{}, err
	}
	for _, table := range checked.Tables {
		if err := access.CheckResource(p, store.ResourceTable, table); err != nil {
			return target{}, err
		}
	}
	if len(remotes) == 0 {
		return target{sql: checked.SQL}, nil
	}
	tables, missing, err := pushdown.Split(checked.Tables, remotes, func(name string) bool {
		_, ok := s.engine.LookupView(name)
		return ok
	})
	switch {
	case err != nil:
		return target{}, apierr.InvalidArgument("%s", err.Error())
	case missing != "": // unregistered since the verdict was cached
		return target{}, apierr.InvalidArgument("unknown table '%s'", missing)
	case len(tables) > 0:
		return target{sql: query, remote: tables}, nil
	}
	return target{sql: checked.SQL}, nil
}

// check runs the sandbox (or reuses its verdict for this text and generation;
// a cached verdict naming a remote table since unregistered is caught by
// authorize).
func (s *Service) check(ctx context.Context, query string, remotes map[string]pushdown.Table) (sqlguard.Checked, error) {
	gen := s.engine.Generation()
	if checked, ok := s.checks.get(query, gen); ok {
		return checked, nil
	}
	checked, err := s.guard.Check(ctx, query, catalog{s.engine, remotes})
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
		return retryAfter(apierr.ResourceExhausted("too many queries running for you at once (the limit is %d, query.per_user_concurrency); wait for one to finish", s.limits.PerUser), time.Second)
	case errors.Is(err, engine.ErrQueueFull):
		return retryAfter(apierr.ResourceExhausted("the server is busy: %s; retry shortly", err.Error()), 2*time.Second)
	case errors.Is(err, engine.ErrQueueTimeout):
		return retryAfter(apierr.Unavailable("the server is busy: %s; retry shortly", err.Error()), 5*time.Second)
	case errors.Is(err, engine.ErrTimeout):
		return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("query exceeded the time limit of %s", s.limits.Timeout))
	case errors.Is(err, engine.ErrCanceled):
		return connect.NewError(connect.CodeCanceled, errors.New("query canceled"))
	case errors.Is(err, engine.ErrInvalidQuery):
		return apierr.InvalidArgument("only a single SELECT statement is allowed")
	case errors.Is(err, engine.ErrNotLoaded), errors.Is(err, engine.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, errors.New("the analytics database is not available yet"))
	}
	return remoteError(err)
}

// retryAfter adds a Retry-After hint to a 429 or 503.
func retryAfter(err error, d time.Duration) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		ce.Meta().Set("Retry-After", strconv.Itoa(int(d.Seconds())))
	}
	return err
}

// query runs a unary Query into an answer in the given form; oneSlice says
// it is handed over as one slice (see answer).
func (s *Service) query(ctx context.Context, req *agnesv1.QueryRequest, f form, oneSlice bool) (*answer, error) {
	if req.GetLimit() < 0 {
		return nil, apierr.InvalidArgument("limit must not be negative, got %d", req.GetLimit())
	}
	tgt, err := s.authorize(ctx, req.GetSql())
	if err != nil {
		return nil, err
	}
	limit := req.GetLimit()
	if limit == 0 {
		limit = defaultQueryLimit
	}
	opts := s.options(ctx, limit)
	opts.MaxBytes = math.MaxInt64 // the answer counts its encoded bytes itself
	// The answer is held until the client has it: the user's query counts
	// against their cap, and its memory against the server's, until then.
	release, err := s.engine.Admit(opts.User)
	if err != nil {
		return nil, s.queryError(err)
	}
	opts.Admitted = true
	a := &answer{form: f, maxBytes: s.limits.MaxBytes, rowCap: opts.MaxRows, oneSlice: oneSlice, memory: s.answers}
	done := func() { a.free(); release() }
	if !reqctx.From(ctx).AfterResponse(done) {
		defer done()
	}
	sum, err := s.run(ctx, tgt, opts, a)
	if derr := a.drain(); err == nil || errors.Is(err, errAnswerFull) {
		err = derr
	}
	if errors.Is(err, errServerMemory) {
		return nil, retryAfter(apierr.Unavailable("the server holds as many answers for clients as its memory allows "+
			"(query.answer_memory = %d bytes); retry shortly or use QueryStream", s.limits.AnswerMemory), 2*time.Second)
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
	a, err := s.query(ctx, req.Msg, f, true)
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
	// frame is how a batch is framed (JSON-format rows; Arrow batches too when
	// it is frameProto); sendEncoded sends one.
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
	tgt, err := s.authorize(ctx, req.GetSql())
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
	var sink streamSink = &arrowStream{out: out}
	if format != agnesv1.ResultFormat_RESULT_FORMAT_ARROW {
		rows := int(req.GetBatchRows())
		if rows == 0 {
			rows = defaultBatchRows
		}
		sink = &rowStream{out: out, frame: out.frame(), rows: rows}
	}
	sum, err := s.run(ctx, tgt, s.options(ctx, req.GetLimit()), sink)
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
