package engine

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// RunOptions are the per-query settings. Zero values take the Engine's.
type RunOptions struct {
	// User is the key of the per-user concurrency cap; "" is not capped
	// (internal callers such as the profiler).
	User     string
	MaxRows  int64
	MaxBytes int64
	Timeout  time.Duration
}

// Truncation says which limit cut a result short.
type Truncation string

// Truncations.
const (
	NotTruncated   Truncation = ""
	TruncatedRows  Truncation = "rows"
	TruncatedBytes Truncation = "bytes"
)

// Summary describes a finished query.
type Summary struct {
	Generation uint64
	Rows       int64
	Bytes      int64 // approximate size of what was delivered
	Truncated  Truncation
	Elapsed    time.Duration
}

// Column describes a result column.
type Column struct {
	Name string
	Type string // DuckDB type name, e.g. BIGINT, VARCHAR, DECIMAL(18,3)
}

// ArrowSink receives a result as Arrow: the schema once, then record
// batches. A batch is released when Batch returns; Retain it to keep it.
type ArrowSink interface {
	Schema(*arrow.Schema) error
	Batch(arrow.RecordBatch) error
}

// ColumnSink is an ArrowSink that also wants the DuckDB column names and types
// (RunArrow calls Columns before Schema).
type ColumnSink interface {
	Columns([]Column) error
}

// QueryError is DuckDB refusing or failing a query. Message is safe to
// show the user: server paths are removed.
type QueryError struct {
	Message string
	err     error
}

func (e *QueryError) Error() string { return e.Message }
func (e *QueryError) Unwrap() error { return e.err }

// sinkError marks an error returned by a sink, which is passed back as is.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return e.err.Error() }
func (e *sinkError) Unwrap() error { return e.err }

type limits struct{ rows, bytes int64 }

// RunArrow runs one SELECT and streams its result to sink as Arrow record
// batches (DuckDB's vectors, up to 2048 rows each), cutting the last one to
// the limits. DuckDB computes the result as the batches are read.
func (e *Engine) RunArrow(ctx context.Context, query string, opts RunOptions, sink ArrowSink) (Summary, error) {
	return e.run(ctx, query, opts, func(ctx context.Context, st *stream, lim limits, sum *Summary) error {
		if cs, ok := sink.(ColumnSink); ok {
			if err := cs.Columns(st.columns()); err != nil {
				return &sinkError{err}
			}
		}
		if err := sink.Schema(st.schema); err != nil {
			return &sinkError{err}
		}
		return st.records(ctx, func(rec arrow.RecordBatch) error {
			if err := sendBatch(rec, lim, sum, sink); err != nil {
				return err
			}
			if sum.Truncated != NotTruncated {
				return errStop
			}
			return nil
		})
	})
}

// sendBatch delivers as much of rec as the limits allow.
func sendBatch(rec arrow.RecordBatch, lim limits, sum *Summary, sink ArrowSink) error {
	n := rec.NumRows()
	keep := n
	if left := lim.rows - sum.Rows; keep > left {
		keep, sum.Truncated = left, TruncatedRows
	}
	perRow := recordSize(rec) / max(n, 1)
	if left := lim.bytes - sum.Bytes; keep*perRow > left {
		keep, sum.Truncated = left/max(perRow, 1), TruncatedBytes
	}
	if keep <= 0 {
		return nil
	}
	out := rec
	if keep < n {
		out = rec.NewSlice(0, keep)
		defer out.Release()
	}
	if err := sink.Batch(out); err != nil {
		return &sinkError{err}
	}
	sum.Rows += keep
	sum.Bytes += keep * perRow
	return nil
}

// Describe returns the names and DuckDB types of a query's result columns.
// It reads none of the rows: the query ends once its columns are known (pass
// one that is cheap to start, e.g. with LIMIT 0).
func (e *Engine) Describe(ctx context.Context, query string, opts RunOptions) ([]Column, error) {
	var cols []Column
	_, err := e.run(ctx, query, opts, func(_ context.Context, st *stream, _ limits, _ *Summary) error {
		cols = st.columns()
		return nil
	})
	return cols, err
}

type execFunc func(ctx context.Context, st *stream, lim limits, sum *Summary) error

// run is the one execution path: admission, generation reference, timeout,
// a pooled connection, the single-SELECT check, the streaming statement,
// error translation.
func (e *Engine) run(ctx context.Context, query string, opts RunOptions, exec execFunc) (Summary, error) {
	start := time.Now()
	lim := limits{rows: opts.MaxRows, bytes: opts.MaxBytes}
	if lim.rows <= 0 {
		lim.rows = e.opts.MaxRows
	}
	if lim.bytes <= 0 {
		lim.bytes = e.opts.MaxBytes
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = e.opts.Timeout
	}

	done, err := e.admit(opts.User)
	if err != nil {
		return Summary{}, err
	}
	defer done()
	g, err := e.acquire()
	if err != nil {
		return Summary{}, err
	}
	defer e.release(g)

	sum := Summary{Generation: g.num}
	qctx, cancel := context.WithTimeoutCause(ctx, timeout, ErrTimeout)
	defer cancel()
	err = func() error {
		c, err := g.pool.get(qctx)
		if err != nil {
			return err
		}
		defer g.pool.put(c)
		if _, known := e.selects.Get(query); !known {
			if err := checkSelect(qctx, c, query); err != nil {
				return err
			}
			if len(query) <= maxRememberedSQL {
				e.selects.Put(query, struct{}{})
			}
		}
		st, err := c.query(qctx, query, true)
		if err != nil {
			return err
		}
		defer st.close()
		return exec(qctx, st, lim, &sum)
	}()
	sum.Elapsed = time.Since(start)
	return sum, translate(qctx, timeout, err)
}

// maxRememberedSQL keeps huge one-off queries out of the verdict cache.
const maxRememberedSQL = 16 << 10

// checkSelect checks that query is exactly one SELECT, as DuckDB's own
// parser sees it: json_serialize_sql serializes SELECT statements only
// (PRAGMA, CALL, SET, DETACH, ... fail). conn.query then refuses a string
// of several statements and anything DuckDB does not prepare as a SELECT,
// before executing it.
func checkSelect(ctx context.Context, c *conn, query string) error {
	st, err := c.query(ctx, "SELECT json_serialize_sql(?::VARCHAR)::VARCHAR", false, driver.NamedValue{Ordinal: 1, Value: query})
	if err != nil {
		return err
	}
	defer st.close()
	var tree string
	for {
		rec, err := st.next()
		if err != nil {
			return err
		}
		if rec == nil {
			break
		}
		if s, ok := rec.Column(0).(*array.String); ok && tree == "" && rec.NumRows() > 0 {
			tree = strings.Clone(s.Value(0))
		}
		rec.Release()
	}
	var parsed struct {
		Error      bool              `json:"error"`
		Message    string            `json:"error_message"`
		Statements []json.RawMessage `json:"statements"`
	}
	if err := json.Unmarshal([]byte(tree), &parsed); err != nil {
		return fmt.Errorf("parse check: %w", err)
	}
	switch {
	case parsed.Error && strings.Contains(parsed.Message, "Only SELECT"):
		return &QueryError{Message: ErrInvalidQuery.Error(), err: ErrInvalidQuery}
	case parsed.Error:
		return &QueryError{Message: cleanMessage(parsed.Message), err: ErrInvalidQuery}
	case len(parsed.Statements) != 1:
		return &QueryError{Message: ErrInvalidQuery.Error(), err: ErrInvalidQuery}
	}
	return nil
}

// translate turns what a query ended with into the package's errors.
func translate(ctx context.Context, timeout time.Duration, err error) error {
	if err == nil {
		return nil
	}
	var se *sinkError
	var qe *QueryError
	var de *duckdb.Error
	switch {
	case errors.As(err, &se):
		return se.err
	case ctx.Err() != nil:
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, ErrTimeout):
			return fmt.Errorf("%w after %s", ErrTimeout, timeout)
		case errors.Is(cause, context.DeadlineExceeded): // the caller's deadline
			return ErrTimeout
		}
		return ErrCanceled
	case errors.As(err, &qe):
		return qe
	case errors.As(err, &de):
		return &QueryError{Message: cleanMessage(de.Msg), err: err}
	}
	return fmt.Errorf("query: %w", err)
}

// cleanMessage makes a DuckDB message fit for a user: no server paths (a
// path keeps only its file name) and no LINE excerpt (the query text with a
// caret under the position, which the message's own position already
// gives).
func cleanMessage(msg string) string {
	if i := strings.Index(msg, "\n\nLINE "); i >= 0 {
		msg = msg[:i]
	}
	var b strings.Builder
	for {
		i := absPathStart(msg)
		if i < 0 {
			b.WriteString(msg)
			break
		}
		end := i + strings.IndexFunc(msg[i:], func(r rune) bool {
			return r == '"' || r == '\'' || r == ' ' || r == '\n' || r == ',' || r == ')'
		})
		if end < i {
			end = len(msg)
		}
		b.WriteString(msg[:i])
		b.WriteString(msg[i+strings.LastIndexByte(msg[i:end], '/')+1 : end])
		msg = msg[end:]
	}
	return strings.TrimSpace(b.String())
}

// absPathStart finds an absolute path: a '/' that starts a token and is
// followed by a name character (so "a / b" and "https://" are not paths).
func absPathStart(s string) int {
	for i := 0; i < len(s)-1; i++ {
		if s[i] != '/' || s[i+1] == '/' || s[i+1] == ' ' {
			continue
		}
		if i == 0 || strings.IndexByte(" \"'(=", s[i-1]) >= 0 {
			return i
		}
	}
	return -1
}

// recordSize is the size of a record batch's buffers.
func recordSize(rec arrow.RecordBatch) int64 {
	var n int64
	for _, col := range rec.Columns() {
		n += dataSize(col.Data())
	}
	return n
}

func dataSize(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataSize(c)
	}
	if _, ok := d.DataType().(*arrow.DictionaryType); ok {
		n += dataSize(d.Dictionary())
	}
	return n
}
