package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

// A partition rewritten by temp + rename while queries read it: DuckDB opens
// a Parquet file by path more than once per query (schema at bind, data at
// scan), so a query overlapping the rename can see two different files. The
// engine retries such a query while nothing of it has been delivered.
func TestQueryDuringPartitionRewrite(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	w := writer(t, f.data, "shop")
	rewrite := func(i int) {
		// Each version differs in size and row groups, as a real rewrite does.
		_, err := w.WriteQuery(ctx, "logs/2026-01", fmt.Sprintf("SELECT range AS n FROM range(%d)", 100_000+(i%7)*30_000))
		must(t, err)
	}
	rewrite(0)
	e := loaded(t, f, Options{})

	stop := make(chan struct{})
	var rewrites atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			rewrite(i)
			rewrites.Add(1)
			time.Sleep(10 * time.Millisecond) // a busy source, not a tight loop
		}
	}()
	var failures []error
	deadline := time.Now().Add(3 * time.Second)
	queries := 0
	for ; time.Now().Before(deadline); queries++ {
		var sink discardSink
		if _, err := e.RunArrow(ctx, "SELECT count(*) AS c, sum(n) AS s FROM logs", RunOptions{}, &sink); err != nil {
			failures = append(failures, err)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d queries during %d rewrites, %d failed", queries, rewrites.Load(), len(failures))
	if rewrites.Load() < 10 {
		t.Fatalf("only %d rewrites: the test did not race", rewrites.Load())
	}
	for i, err := range failures {
		if i == 5 {
			break
		}
		t.Errorf("query failed during a rewrite: %v", err)
	}
}

func TestRerunnable(t *testing.T) {
	for msg, want := range map[string]bool{
		"Invalid Error: TProtocolException: Invalid data":                                  true,
		`Invalid Input Error: Failed to read file "x.parquet": ZSTD Decompression failure`: true,
		"IO Error: No files found that match the pattern":                                  true,
		`Binder Error: Referenced column "nope" not found`:                                 false,
		"Parser Error: syntax error at or near \"SELEC\"":                                  false,
		"Invalid Input Error: bad regex":                                                   false,
		"Out of Memory Error: failed to allocate":                                          false,
	} {
		if got := rerunnable(&duckdb.Error{Type: duckdb.ErrorTypeInvalid, Msg: msg}); got != want {
			t.Errorf("rerunnable(%q) = %v, want %v", msg, got, want)
		}
	}
	if rerunnable(ErrTimeout) {
		t.Error("a timeout is rerunnable")
	}
}
