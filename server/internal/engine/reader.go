package engine

import (
	"context"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// OpenReader starts a result computed elsewhere (a query pushed down to a
// remote source) and returns it as Arrow with its columns. maxRows is how
// many rows the reader needs to give at most: one over the limit, so the
// limit can tell a cut result from a complete one.
type OpenReader func(ctx context.Context, maxRows int64) (array.RecordReader, []Column, error)

// RunReader delivers a result that does not come from DuckDB to sink under
// the limits of RunArrow: the user's concurrency cap, rows and bytes, the
// timeout (which bounds open too) and cancellation. It holds no generation
// and no pooled connection. Errors of open and of the reader are returned
// wrapped, so callers can match their own types; a timeout or cancellation
// is ErrTimeout or ErrCanceled.
func (e *Engine) RunReader(ctx context.Context, opts RunOptions, open OpenReader, sink ArrowSink) (Summary, error) {
	start := time.Now()
	lim, timeout := e.bounds(opts)
	if !opts.Admitted {
		done, err := e.admit(opts.User)
		if err != nil {
			return Summary{}, err
		}
		defer done()
	}
	var sum Summary
	qctx, cancel := context.WithTimeoutCause(ctx, timeout, ErrTimeout)
	defer cancel()
	err := func() error {
		rdr, cols, err := open(qctx, lim.rows+1)
		if err != nil {
			return err
		}
		defer rdr.Release()
		if cs, ok := sink.(ColumnSink); ok {
			if err := cs.Columns(cols); err != nil {
				return &sinkError{err}
			}
		}
		if err := sink.Schema(rdr.Schema()); err != nil {
			return &sinkError{err}
		}
		for rdr.Next() {
			if err := qctx.Err(); err != nil {
				return err
			}
			if err := sendBatch(rdr.RecordBatch(), lim, &sum, sink); err != nil {
				return err
			}
			if sum.Truncated != NotTruncated {
				return nil
			}
		}
		return rdr.Err()
	}()
	sum.Elapsed = time.Since(start)
	return sum, translate(qctx, timeout, err)
}
