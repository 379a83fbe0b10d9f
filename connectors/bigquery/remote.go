package bigquery

import (
	"context"
	"errors"
	"sync/atomic"

	bq "cloud.google.com/go/bigquery"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/api/iterator"

	"github.com/agnesdata/agnes/connectors/extract"
)

// Remote runs SELECTs on BigQuery for query_mode "remote". The caller (the
// server's query path) checks the user's DuckDB SQL with its sandbox and
// RBAC, turns it into BigQuery SQL with Translate, calls DryRun to enforce
// its byte limits and quotas, then Query.
type Remote struct {
	c *Connector
	// MaxScanBytes refuses (DryRun) and caps (Query, as maximumBytesBilled)
	// queries over this many bytes; 0 = no cap.
	MaxScanBytes int64
	// BatchRows is the rows per Arrow record batch; default 1024.
	BatchRows int
	// Allocator for the batches; default memory.DefaultAllocator.
	Allocator memory.Allocator
}

// Remote returns the pushdown runner of this source.
func (c *Connector) Remote(maxScanBytes int64) *Remote {
	return &Remote{c: c, MaxScanBytes: maxScanBytes}
}

// DryRun returns the bytes BigQuery estimates sql processes. Over
// MaxScanBytes it also returns an *OverCapError (with the bytes).
func (r *Remote) DryRun(ctx context.Context, sql string) (int64, error) {
	bytes, err := r.c.dryRun(ctx, sql)
	if err != nil {
		return 0, err
	}
	if r.MaxScanBytes > 0 && bytes > r.MaxScanBytes {
		return bytes, &OverCapError{What: "the query", Estimate: bytes, Cap: r.MaxScanBytes}
	}
	return bytes, nil
}

// Query runs sql and returns its result as Arrow record batches, reading
// BigQuery's pages as the batches are consumed (memory stays bounded by a
// page and a batch). At most maxRows rows are returned (0 = all);
// Truncated reports whether more existed.
func (r *Remote) Query(ctx context.Context, sql string, maxRows int64) (*Rows, error) {
	client, err := r.c.bigQuery(ctx)
	if err != nil {
		return nil, err
	}
	q := r.c.query(client, sql)
	if r.MaxScanBytes > 0 {
		q.MaxBytesBilled = max(r.MaxScanBytes, minBilledBytes)
	}
	it, err := q.Read(ctx)
	if err != nil {
		return nil, r.c.upstream("query", err)
	}
	rows := &Rows{it: it, c: r.c, maxRows: maxRows, batch: r.BatchRows, mem: r.Allocator, refs: 1}
	if rows.batch <= 0 {
		rows.batch = 1024
	}
	if rows.mem == nil {
		rows.mem = memory.DefaultAllocator
	}
	// The schema arrives with the first page.
	if err := rows.advance(); err != nil {
		return nil, err
	}
	rows.schema = arrowSchema(it.Schema)
	return rows, nil
}

// Rows is a remote result. It implements array.RecordReader; a batch is
// valid until the next call to Next (Retain it to keep it).
type Rows struct {
	it      *bq.RowIterator
	c       *Connector
	schema  *arrow.Schema
	mem     memory.Allocator
	batch   int
	maxRows int64

	row       []bq.Value // read ahead; nil at the end
	read      int64
	truncated bool
	cur       arrow.RecordBatch
	err       error
	refs      int64
}

var _ array.RecordReader = (*Rows)(nil)

// advance reads the next row into r.row (nil at the end).
func (r *Rows) advance() error {
	r.row = nil
	var row []bq.Value
	err := r.it.Next(&row)
	switch {
	case errors.Is(err, iterator.Done):
		return nil
	case err != nil:
		return r.c.upstream("read results", err)
	}
	if r.maxRows > 0 && r.read >= r.maxRows {
		r.truncated = true
		return nil
	}
	r.row = row
	return nil
}

// Schema is the result's Arrow schema.
func (r *Rows) Schema() *arrow.Schema { return r.schema }

// BigQuerySchema is the result's schema as BigQuery sent it.
func (r *Rows) BigQuerySchema() bq.Schema { return r.it.Schema }

// Columns are the result's columns with DuckDB type names (the types a
// materialized table of the same result would have).
func (r *Rows) Columns() []extract.Column { return columns(r.it.Schema) }

// TotalRows is the row count of the whole result, as BigQuery reports it.
func (r *Rows) TotalRows() uint64 { return r.it.TotalRows }

// Truncated reports whether the result had more than maxRows rows.
func (r *Rows) Truncated() bool { return r.truncated }

// Next builds the next batch; false at the end or on error (see Err).
func (r *Rows) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.err != nil || r.row == nil {
		return false
	}
	b := array.NewRecordBuilder(r.mem, r.schema)
	defer b.Release()
	fields := r.it.Schema
	n := 0
	for r.row != nil && n < r.batch {
		for i, f := range fields {
			if err := appendArrow(b.Field(i), f, r.row[i]); err != nil {
				r.err = err
				return false
			}
		}
		n++
		r.read++
		if err := r.advance(); err != nil {
			r.err = err
			return false
		}
	}
	r.cur = b.NewRecordBatch()
	return true
}

// RecordBatch is the current batch.
func (r *Rows) RecordBatch() arrow.RecordBatch { return r.cur }

// Record is RecordBatch (array.RecordReader's deprecated name).
func (r *Rows) Record() arrow.RecordBatch { return r.cur }

// Err is the error that ended Next, if any.
func (r *Rows) Err() error { return r.err }

// Retain adds a reference.
func (r *Rows) Retain() { atomic.AddInt64(&r.refs, 1) }

// Release drops a reference; the last one frees the current batch.
func (r *Rows) Release() {
	if atomic.AddInt64(&r.refs, -1) == 0 && r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}
