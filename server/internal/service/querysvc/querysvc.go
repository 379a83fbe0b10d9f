// Package querysvc implements agnes.v1.QueryService: sandboxed, RBAC-checked SQL over
// the master analytics views, answered whole (Query) or streamed (QueryStream).
package querysvc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/engine"
	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/sqlguard"
	"github.com/agnesdata/agnes/server/internal/store"
)

// Limits bound one query.
type Limits struct {
	MaxRows  int64
	MaxBytes int64
	Timeout  time.Duration
}

// Service implements QueryService.
type Service struct {
	engine *engine.Engine
	guard  *sqlguard.Checker
	limits Limits
	checks *checkCache
}

var _ agnesv1connect.QueryServiceHandler = (*Service)(nil)

// New returns the service.
func New(eng *engine.Engine, guard *sqlguard.Checker, limits Limits) *Service {
	return &Service{engine: eng, guard: guard, limits: limits, checks: newCheckCache(4096)}
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
// hardened DuckDB settings are layer 4.
func (s *Service) authorize(ctx context.Context, query string) error {
	if strings.TrimSpace(query) == "" {
		return apierr.InvalidArgument("sql is required")
	}
	if len(query) > maxSQLBytes {
		return apierr.InvalidArgument("sql is longer than %d bytes", maxSQLBytes)
	}
	tables, err := s.check(ctx, query)
	if err != nil {
		return err
	}
	p := auth.FromContext(ctx)
	for _, table := range tables {
		if err := access.CheckResource(p, store.ResourceTable, table); err != nil {
			return err
		}
	}
	return nil
}

// check runs the sandbox (or reuses its verdict for this text and generation) and
// returns the views the query references.
func (s *Service) check(ctx context.Context, query string) ([]string, error) {
	gen := s.engine.Generation()
	if tables, ok := s.checks.get(query, gen); ok {
		return tables, nil
	}
	checked, err := s.guard.Check(ctx, query, catalog{s.engine})
	var rejected *sqlguard.Error
	if errors.As(err, &rejected) {
		return nil, apierr.InvalidArgument("%s", rejected.Message)
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox check: %w", err)
	}
	s.checks.put(query, gen, checked.Tables)
	return checked.Tables, nil
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
		return apierr.ResourceExhausted("too many queries running for you at once; wait for one to finish")
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

// Query implements QueryService.
func (s *Service) Query(ctx context.Context, req *agnesv1.QueryRequest) (*agnesv1.QueryResponse, error) {
	if req.GetLimit() < 0 {
		return nil, apierr.InvalidArgument("limit must not be negative")
	}
	if err := s.authorize(ctx, req.GetSql()); err != nil {
		return nil, err
	}
	limit := req.GetLimit()
	if limit == 0 {
		limit = defaultQueryLimit
	}
	sink := &collect{res: &agnesv1.QueryResponse{Columns: []string{}, ColumnTypes: []string{}, Rows: []*structpb.ListValue{}}}
	sum, err := s.engine.RunRows(ctx, req.GetSql(), s.options(ctx, limit), sink)
	if err != nil {
		return nil, s.queryError(err)
	}
	sink.res.RowCount = sum.Rows
	sink.res.Truncated = sum.Truncated != engine.NotTruncated
	return sink.res, nil
}

type collect struct {
	res   *agnesv1.QueryResponse
	types []string
}

func (c *collect) Columns(cols []engine.Column) error {
	for _, col := range cols {
		c.res.Columns = append(c.res.Columns, col.Name)
		c.res.ColumnTypes = append(c.res.ColumnTypes, col.Type)
	}
	c.types = c.res.ColumnTypes
	return nil
}

func (c *collect) Rows(rows [][]any) error {
	for _, r := range rows {
		c.res.Rows = append(c.res.Rows, listValue(r, c.types))
	}
	return nil
}

// QueryStream implements QueryService.
func (s *Service) QueryStream(ctx context.Context, req *agnesv1.QueryStreamRequest, stream *connect.ServerStream[agnesv1.QueryStreamResponse]) error {
	return s.stream(ctx, req, stream.Send, nil)
}

// stream runs a streamed query and sends its messages. rest, when set, writes JSON
// rows straight to the REST response instead of sending them as messages.
func (s *Service) stream(ctx context.Context, req *agnesv1.QueryStreamRequest, send func(*agnesv1.QueryStreamResponse) error, rest *ndjson) error {
	if req.GetLimit() < 0 || req.GetBatchRows() < 0 || req.GetBatchRows() > maxBatchRows {
		return apierr.InvalidArgument("limit must not be negative and batch_rows must be between 0 and %d", maxBatchRows)
	}
	if err := s.authorize(ctx, req.GetSql()); err != nil {
		return err
	}
	format := req.GetFormat()
	if format == agnesv1.ResultFormat_RESULT_FORMAT_UNSPECIFIED {
		format = agnesv1.ResultFormat_RESULT_FORMAT_ARROW
		if reqctx.From(ctx).Via == "rest" {
			format = agnesv1.ResultFormat_RESULT_FORMAT_JSON
		}
	}
	opts := s.options(ctx, req.GetLimit())
	var (
		sum   engine.Summary
		err   error
		bytes int64
	)
	switch {
	case format == agnesv1.ResultFormat_RESULT_FORMAT_ARROW:
		sink := &arrowStream{send: send}
		sum, err = s.engine.RunArrow(ctx, req.GetSql(), opts, sink)
		if derr := sink.drain(); err == nil {
			err = derr
		}
		bytes = sink.bytes
	case rest != nil:
		sum, err = s.engine.RunArrow(ctx, req.GetSql(), opts, rest)
		if derr := rest.drain(); err == nil { // the rows are written before the summary
			err = derr
		}
		bytes = rest.bytes
	default:
		opts.BatchRows = int(req.GetBatchRows())
		if opts.BatchRows == 0 {
			opts.BatchRows = defaultBatchRows
		}
		sum, err = s.engine.RunRows(ctx, req.GetSql(), opts, &jsonStream{send: send})
		bytes = sum.Bytes
	}
	if err != nil {
		return s.queryError(err)
	}
	return send(&agnesv1.QueryStreamResponse{Event: &agnesv1.QueryStreamResponse_Summary{Summary: &agnesv1.QuerySummary{
		Rows: sum.Rows, Bytes: bytes, ElapsedMs: sum.Elapsed.Milliseconds(), Truncated: sum.Truncated != engine.NotTruncated,
	}}})
}

type jsonStream struct {
	send  func(*agnesv1.QueryStreamResponse) error
	types []string
}

func (j *jsonStream) Columns(cols []engine.Column) error {
	schema := &agnesv1.QuerySchema{Format: agnesv1.ResultFormat_RESULT_FORMAT_JSON}
	for _, c := range cols {
		schema.Columns = append(schema.Columns, &agnesv1.Column{Name: c.Name, Type: c.Type})
		j.types = append(j.types, c.Type)
	}
	return j.send(&agnesv1.QueryStreamResponse{Event: &agnesv1.QueryStreamResponse_Schema{Schema: schema}})
}

func (j *jsonStream) Rows(rows [][]any) error {
	batch := &agnesv1.QueryBatch{RowCount: int64(len(rows)), Rows: make([]*structpb.ListValue, 0, len(rows))}
	for _, r := range rows {
		batch.Rows = append(batch.Rows, listValue(r, j.types))
	}
	return j.send(&agnesv1.QueryStreamResponse{Event: &agnesv1.QueryStreamResponse_Batch{Batch: batch}})
}
