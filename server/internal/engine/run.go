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
	// Admitted: the caller counted the query against User's cap itself (Admit).
	Admitted bool
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
		// The sink hears of the result with its first batch (or its end), so
		// that a read failing before then can be run again (see rerunnable).
		begin := func() error {
			if st.delivered {
				return nil
			}
			st.delivered = true
			if cs, ok := sink.(ColumnSink); ok {
				if err := cs.Columns(st.columns()); err != nil {
					return &sinkError{err}
				}
			}
			if err := sink.Schema(st.schema); err != nil {
				return &sinkError{err}
			}
			return nil
		}
		err := st.records(ctx, func(rec arrow.RecordBatch) error {
			if err := begin(); err != nil {
				return err
			}
			if err := sendBatch(rec, lim, sum, sink); err != nil {
				return err
			}
			if sum.Truncated != NotTruncated {
				return errStop
			}
			return nil
		})
		if err != nil {
			return err
		}
		return begin()
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
	lim, timeout := e.bounds(opts)

	if !opts.Admitted {
		done, err := e.admit(opts.User)
		if err != nil {
			return Summary{}, err
		}
		defer done()
	}
	g, err := e.acquire()
	if err != nil {
		return Summary{}, err
	}
	defer e.release(g)

	sum := Summary{Generation: g.num}
	qctx, cancel := context.WithTimeoutCause(ctx, timeout, ErrTimeout)
	defer cancel()
	err = func() error {
		release, err := e.slots.acquire(qctx, opts.User)
		if err != nil {
			return err
		}
		defer release()
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
		for attempt := 1; ; attempt++ {
			delivered, err := execOnce(qctx, c, query, exec, lim, &sum)
			if err == nil || delivered || attempt == maxAttempts || qctx.Err() != nil || !rerunnable(err) {
				return err
			}
			c.forget(query) // bound to the file as it was
			sum = Summary{Generation: g.num}
		}
	}()
	sum.Elapsed = time.Since(start)
	return sum, translate(qctx, timeout, err)
}

// execOnce starts query on c and hands its stream to exec; delivered
// reports whether exec passed anything of the result on.
func execOnce(ctx context.Context, c *conn, query string, exec execFunc, lim limits, sum *Summary) (delivered bool, err error) {
	st, err := c.query(ctx, query, true)
	if err != nil {
		return false, err
	}
	defer st.close()
	err = exec(ctx, st, lim, sum)
	return st.delivered, err
}

// maxAttempts bounds how often a query is started when a file it reads
// changed under it (see rerunnable).
const maxAttempts = 3

// rerunnable reports whether err may come from a data file replaced while
// the query read it. Syncs replace a file by writing a new one and renaming
// it over the old (connectors/extract), but DuckDB opens a Parquet file by
// path more than once per query (its metadata at bind, its data at scan), so
// a query overlapping the rename can read the new file's bytes at the old
// file's offsets ("Invalid Error: TProtocolException", "Prefetch registered
// for bytes outside file", "don't know what type", "Failed to read file":
// ZSTD failures) or an IO error. Started again on a fresh prepare, the query
// sees one version. A query rejected for its own sake (parser, binder,
// conversion, limits) never fails this way. (DuckDB's external file cache is
// off for the same reason: it can serve a replaced file's old bytes.)
func rerunnable(err error) bool {
	var de *duckdb.Error
	if !errors.As(err, &de) {
		return false
	}
	// By DuckDB's own prefix: prepare and pending errors all come typed
	// Invalid, binder and parser errors included.
	for _, p := range []string{"Invalid Error: ", "IO Error: ", "Invalid Input Error: Failed to read file"} {
		if strings.HasPrefix(de.Msg, p) {
			return true
		}
	}
	return false
}

// bounds are opts' row, byte and time limits, the engine's where opts
// leave one unset.
func (e *Engine) bounds(opts RunOptions) (limits, time.Duration) {
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
	return lim, timeout
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
