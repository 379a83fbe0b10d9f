package zzold

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
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
	// BatchRows is the number of rows per RowSink.Rows call. Default 1000.
	BatchRows int
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

// Column describes a result column of RunRows.
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

// RowSink receives a result as rows: the columns once, then batches of up
// to RunOptions.BatchRows rows. Each batch is freshly allocated.
type RowSink interface {
	Columns([]Column) error
	Rows([][]any) error
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

type limits struct {
	rows, bytes int64
	batch       int
}

// RunArrow runs one SELECT and streams its result to sink as Arrow record
// batches (DuckDB's vectors, 2048 rows each), cutting the last one to the
// limits.
func (e *Engine) RunArrow(ctx context.Context, query string, opts RunOptions, sink ArrowSink) (Summary, error) {
	return e.run(ctx, query, opts, func(ctx context.Context, conn *sql.Conn, q string, lim limits, sum *Summary) error {
		return conn.Raw(func(dc any) error {
			dconn, ok := dc.(driver.Conn)
			if !ok {
				return fmt.Errorf("unexpected driver connection %T", dc)
			}
			a, err := duckdb.NewArrowFromConn(dconn)
			if err != nil {
				return err
			}
			rr, err := a.QueryContext(ctx, q)
			if err != nil {
				return err
			}
			defer rr.Release()
			if err := sink.Schema(rr.Schema()); err != nil {
				return &sinkError{err}
			}
			for sum.Truncated == NotTruncated && rr.Next() {
				if err := sendBatch(rr.RecordBatch(), lim, sum, sink); err != nil {
					return err
				}
			}
			return rr.Err()
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

// RunRows runs one SELECT and streams its result to sink in batches of Go
// values as database/sql scans them (int64, float64, string, []byte,
// time.Time, bool, *big.Int, duckdb.Decimal, duckdb.Interval, []any,
// map[string]any, ...), for JSON encoding.
func (e *Engine) RunRows(ctx context.Context, query string, opts RunOptions, sink RowSink) (Summary, error) {
	return e.run(ctx, query, opts, func(ctx context.Context, conn *sql.Conn, q string, lim limits, sum *Summary) error {
		rows, err := conn.QueryContext(ctx, q)
		if err != nil {
			return err
		}
		defer rows.Close()
		types, err := rows.ColumnTypes()
		if err != nil {
			return err
		}
		cols := make([]Column, len(types))
		for i, t := range types {
			cols[i] = Column{Name: t.Name(), Type: t.DatabaseTypeName()}
		}
		if err := sink.Columns(cols); err != nil {
			return &sinkError{err}
		}
		batch := make([][]any, 0, lim.batch)
		for rows.Next() {
			if sum.Rows == lim.rows {
				sum.Truncated = TruncatedRows
				break
			}
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			size := rowSize(vals)
			if sum.Bytes+size > lim.bytes {
				sum.Truncated = TruncatedBytes
				break
			}
			batch = append(batch, vals)
			sum.Rows++
			sum.Bytes += size
			if len(batch) == lim.batch {
				if err := sink.Rows(batch); err != nil {
					return &sinkError{err}
				}
				batch = make([][]any, 0, lim.batch)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(batch) > 0 {
			if err := sink.Rows(batch); err != nil {
				return &sinkError{err}
			}
		}
		return nil
	})
}

type execFunc func(ctx context.Context, conn *sql.Conn, query string, lim limits, sum *Summary) error

// run is the common path: admission, generation reference, timeout, a
// pooled connection, the single-SELECT check, the row-cap wrapper, error
// translation.
func (e *Engine) run(ctx context.Context, query string, opts RunOptions, exec execFunc) (Summary, error) {
	start := time.Now()
	lim := limits{rows: opts.MaxRows, bytes: opts.MaxBytes, batch: opts.BatchRows}
	if lim.rows <= 0 {
		lim.rows = e.opts.MaxRows
	}
	if lim.bytes <= 0 {
		lim.bytes = e.opts.MaxBytes
	}
	if lim.batch <= 0 {
		lim.batch = 1000
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
		conn, err := g.db.Conn(qctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		q, err := wrap(qctx, conn, query, lim.rows)
		if err != nil {
			return err
		}
		return exec(qctx, conn, q, lim, &sum)
	}()
	sum.Elapsed = time.Since(start)
	return sum, translate(qctx, timeout, err)
}

// wrap checks that query is exactly one SELECT, as DuckDB's own parser sees
// it, and caps what DuckDB materializes at limit+1 rows (the extra row tells
// that the result was cut). duckdb-go executes every statement of a
// multi-statement string, even on prepare, so the check comes first.
func wrap(ctx context.Context, conn *sql.Conn, query string, limit int64) (string, error) {
	var tree string
	if err := conn.QueryRowContext(ctx, "SELECT json_serialize_sql(?::VARCHAR)::VARCHAR", query).Scan(&tree); err != nil {
		return "", err
	}
	var parsed struct {
		Error      bool              `json:"error"`
		Message    string            `json:"error_message"`
		Statements []json.RawMessage `json:"statements"`
	}
	if err := json.Unmarshal([]byte(tree), &parsed); err != nil {
		return "", fmt.Errorf("parse check: %w", err)
	}
	switch {
	case parsed.Error && strings.Contains(parsed.Message, "Only SELECT"):
		return "", &QueryError{Message: ErrInvalidQuery.Error(), err: ErrInvalidQuery}
	case parsed.Error:
		return "", &QueryError{Message: cleanMessage(parsed.Message), err: ErrInvalidQuery}
	case len(parsed.Statements) != 1:
		return "", &QueryError{Message: ErrInvalidQuery.Error(), err: ErrInvalidQuery}
	}
	body := strings.TrimRight(strings.TrimSpace(query), "; \t\r\n")
	// Newlines keep a trailing -- comment from swallowing the wrapper.
	return "SELECT * FROM (\n" + body + "\n) LIMIT " + strconv.FormatInt(limit+1, 10), nil
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
// path keeps only its file name) and no LINE excerpt, whose positions refer
// to the wrapped query rather than the user's.
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

// rowSize approximates the encoded size of a row.
func rowSize(vals []any) int64 {
	var n int64
	for _, v := range vals {
		n += valueSize(v)
	}
	return n
}

func valueSize(v any) int64 {
	switch v := v.(type) {
	case nil, bool:
		return 1
	case string:
		return int64(len(v))
	case []byte:
		return int64(len(v))
	case *big.Int:
		return int64(len(v.Bytes())) + 1
	case []any:
		var n int64
		for _, x := range v {
			n += valueSize(x)
		}
		return n
	case map[string]any:
		var n int64
		for k, x := range v {
			n += int64(len(k)) + valueSize(x)
		}
		return n
	case duckdb.Map:
		var n int64
		for k, x := range v {
			n += valueSize(k) + valueSize(x)
		}
		return n
	}
	return 8 // numbers, times, intervals, decimals
}
