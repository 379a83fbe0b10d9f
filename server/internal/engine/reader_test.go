package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// batches returns a reader of n batches of 2 rows each.
func batches(n int) array.RecordReader {
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	var recs []arrow.RecordBatch
	for i := range n {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		b.Field(0).(*array.Int64Builder).AppendValues([]int64{int64(2 * i), int64(2*i + 1)}, nil)
		recs = append(recs, b.NewRecordBatch())
		b.Release()
	}
	r, err := array.NewRecordReader(schema, recs)
	if err != nil {
		panic(err)
	}
	return r
}

func TestRunReaderLimits(t *testing.T) {
	e := New(Options{MaxUserQueries: 1})
	var asked int64
	open := func(_ context.Context, maxRows int64) (array.RecordReader, []Column, error) {
		asked = maxRows
		return batches(3), []Column{{Name: "id", Type: "BIGINT"}}, nil
	}
	sink := &discardSink{tb: t}
	sum, err := e.RunReader(context.Background(), RunOptions{User: "ann", MaxRows: 3}, open, sink)
	if err != nil || sum.Rows != 3 || sum.Truncated != TruncatedRows || sink.rows != 3 {
		t.Errorf("3 of 6 rows: %+v, %v, sink %d rows", sum, err, sink.rows)
	}
	if asked != 4 {
		t.Errorf("open was asked for %d rows, want the limit + 1", asked)
	}
	sum, err = e.RunReader(context.Background(), RunOptions{User: "ann", MaxRows: 6}, open, &discardSink{tb: t})
	if err != nil || sum.Rows != 6 || sum.Truncated != NotTruncated {
		t.Errorf("all 6 rows: %+v, %v", sum, err)
	}

	// An open error comes back as itself; the user's slot is given back.
	boom := errors.New("boom")
	_, err = e.RunReader(context.Background(), RunOptions{User: "ann"}, func(context.Context, int64) (array.RecordReader, []Column, error) {
		return nil, nil, boom
	}, &discardSink{tb: t})
	if !errors.Is(err, boom) {
		t.Errorf("open error: %v", err)
	}
	// The per-user cap counts remote queries too.
	release, err := e.Admit("ann")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, err := e.RunReader(context.Background(), RunOptions{User: "ann"}, open, &discardSink{tb: t}); !errors.Is(err, ErrTooManyQueries) {
		t.Errorf("over the per-user cap: %v", err)
	}
	// A canceled context is ErrCanceled.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.RunReader(ctx, RunOptions{User: "bob"}, open, &discardSink{tb: t}); !errors.Is(err, ErrCanceled) {
		t.Errorf("canceled: %v", err)
	}
}
