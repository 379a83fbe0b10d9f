package engine

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/orchestrator"
)

// wideRows is the size of the big fixture's table: 10 M rows of 4 columns,
// about 400 MB as Arrow, more than the streaming memory budget.
const wideRows = 10_000_000

// bigFixture returns an engine over a master with one view, wide, backed by
// a single Parquet file (also returned), and big limits.
func bigFixture(tb testing.TB) (*Engine, string) {
	tb.Helper()
	ctx := context.Background()
	data := tb.TempDir()
	w := writer(tb, data, "big")
	f, err := w.WriteQuery(ctx, "wide", fmt.Sprintf(`SELECT range AS id, range %% 1000 AS k,
		'row ' || range AS s, range * 0.25 AS d FROM range(%d)`, wideRows))
	must(tb, err)
	must(tb, w.Commit(ctx, extract.Contents{Tables: []extract.Table{{Meta: f.Meta("")}}}))
	fx := &fixture{data: data, orch: orchestrator.New(data, orchestrator.Options{})}
	e := loaded(tb, fx, Options{MaxRows: 1 << 40, MaxBytes: 1 << 40, Timeout: 10 * time.Minute})
	return e, filepath.Join(orchestrator.ExtractDir(data, "big"), extract.DataDir, "wide.parquet")
}

// procStatus reads a kB field of /proc/self/status, in bytes.
func procStatus(tb testing.TB, field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	must(tb, err)
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			must(tb, err)
			return kb << 10
		}
	}
	tb.Skipf("no %s in /proc/self/status", field)
	return 0
}

// discardSink counts what it gets, notes when the first batch came and
// samples the process's RSS as batches arrive.
type discardSink struct {
	start   time.Time
	first   time.Duration
	rows    int64
	batches int
	peakRSS int64
	tb      testing.TB
}

func (d *discardSink) Schema(*arrow.Schema) error { return nil }
func (d *discardSink) Batch(rec arrow.RecordBatch) error {
	if d.batches == 0 {
		d.first = time.Since(d.start)
	}
	d.batches++
	d.rows += rec.NumRows()
	if d.batches%64 == 0 {
		d.peakRSS = max(d.peakRSS, procStatus(d.tb, "VmRSS"))
	}
	return nil
}

// TestStreamingMemory streams results far bigger than the memory budget
// through RunArrow and checks that the process's resident memory grows by
// well under 256 MB and that the first batch arrives long before the
// result could have been computed.
func TestStreamingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and streams a 10M-row table")
	}
	e, _ := bigFixture(t)
	for _, tc := range []struct {
		name, query string
		rows        int64
	}{
		{"parquet view", "SELECT * FROM wide", wideRows},
		{"range", "SELECT i, i * 2 AS j, 'row ' || i AS s, i / 3 AS d FROM range(20_000_000) t(i)", 20_000_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := procStatus(t, "VmRSS")
			// Reset VmHWM to the current RSS, where the kernel allows it.
			hwmReset := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
			sink := &discardSink{start: time.Now(), tb: t}
			sum, err := e.RunArrow(context.Background(), tc.query, RunOptions{}, sink)
			must(t, err)
			total := time.Since(sink.start)
			peak := max(sink.peakRSS, procStatus(t, "VmRSS"))
			if hwmReset {
				peak = max(peak, procStatus(t, "VmHWM"))
			}
			growth := peak - base
			t.Logf("%d rows, %d batches, %.0f MB of Arrow in %s; first batch after %s; RSS %d MB → peak %d MB (+%d MB, VmHWM reset: %v)",
				sink.rows, sink.batches, float64(sum.Bytes)/1e6, total.Round(time.Millisecond), sink.first.Round(time.Microsecond),
				base>>20, peak>>20, growth>>20, hwmReset)
			if sink.rows != tc.rows || sum.Rows != tc.rows || sum.Truncated != NotTruncated {
				t.Fatalf("got %d rows (summary %+v), want %d", sink.rows, sum, tc.rows)
			}
			if growth > 256<<20 {
				t.Errorf("RSS grew by %d MB while streaming, budget 256 MB", growth>>20)
			}
			// Materializing first would put the first batch after most of the
			// total (the scan, then the conversion); it comes after a small
			// part of it (query setup and the first chunk).
			if sink.first > total/3 {
				t.Errorf("first batch after %s of %s: the result is not streamed", sink.first, total)
			}
		})
	}
}

// TestFirstBatchEarly: a query whose whole result would take minutes to
// compute (and gigabytes to hold) returns its first rows, cut at the row
// limit, at once.
func TestFirstBatchEarly(t *testing.T) {
	e := loaded(t, newFixture(t), Options{})
	start := time.Now()
	sink := &discardSink{start: start, tb: t}
	sum, err := e.RunArrow(context.Background(), "SELECT i, 'row ' || i AS s FROM range(1_000_000_000) t(i)", RunOptions{MaxRows: 10_000}, sink)
	must(t, err)
	took := time.Since(start)
	t.Logf("first batch after %s, %d rows in %s", sink.first, sum.Rows, took)
	if sum.Rows != 10_000 || sum.Truncated != TruncatedRows {
		t.Errorf("summary %+v", sum)
	}
	if took > 2*time.Second {
		t.Errorf("%s for the first 10 000 rows of a billion: the result is not streamed", took)
	}
}

// ipcSink encodes every batch as Arrow IPC, as the query service does.
type ipcSink struct {
	w    *ipc.Writer
	rows int64
}

func (s *ipcSink) Schema(sc *arrow.Schema) error {
	s.w = ipc.NewWriter(io.Discard, ipc.WithSchema(sc))
	return nil
}

func (s *ipcSink) Batch(rec arrow.RecordBatch) error {
	s.rows += rec.NumRows()
	return s.w.Write(rec)
}

// BenchmarkRunArrowScan streams the 10M-row table as Arrow IPC through the
// engine and, in the same iteration, through duckdb-go's own Arrow reader
// (NewArrowFromConn + QueryContext) in process over the same Parquet file,
// and reports both times and their ratio (engine / duckdb-go).
func BenchmarkRunArrowScan(b *testing.B) {
	e, file := bigFixture(b)
	ctx := context.Background()
	connector, err := duckdb.NewConnector("", nil)
	must(b, err)
	db := sql.OpenDB(connector)
	defer db.Close()
	conn, err := db.Conn(ctx)
	must(b, err)
	defer conn.Close()

	runEngine := func() {
		var s ipcSink
		if _, err := e.RunArrow(ctx, "SELECT * FROM wide", RunOptions{}, &s); err != nil || s.rows != wideRows {
			b.Fatalf("engine: %d rows, %v", s.rows, err)
		}
	}
	runDuckDBGo := func() {
		var s ipcSink
		err := conn.Raw(func(dc any) error {
			a, err := duckdb.NewArrowFromConn(dc.(driver.Conn))
			if err != nil {
				return err
			}
			rr, err := a.QueryContext(ctx, "SELECT * FROM read_parquet('"+file+"')")
			if err != nil {
				return err
			}
			defer rr.Release()
			must(b, s.Schema(rr.Schema()))
			for rr.Next() {
				if err := s.Batch(rr.RecordBatch()); err != nil {
					return err
				}
			}
			return rr.Err()
		})
		if err != nil || s.rows != wideRows {
			b.Fatalf("duckdb-go: %d rows, %v", s.rows, err)
		}
	}
	runEngine() // warm up both
	runDuckDBGo()

	var engine, baseline time.Duration
	b.ResetTimer()
	for i := range b.N {
		// Alternate the order, so neither side always runs on a warmer
		// machine.
		first, second, d1, d2 := runEngine, runDuckDBGo, &engine, &baseline
		if i%2 == 1 {
			first, second, d1, d2 = runDuckDBGo, runEngine, &baseline, &engine
		}
		start := time.Now()
		first()
		*d1 += time.Since(start)
		start = time.Now()
		second()
		*d2 += time.Since(start)
	}
	b.ReportMetric(engine.Seconds()/float64(b.N), "engine-s/op")
	b.ReportMetric(baseline.Seconds()/float64(b.N), "duckdbgo-s/op")
	b.ReportMetric(engine.Seconds()/baseline.Seconds(), "ratio")
	b.ReportMetric(0, "ns/op")
}

// TestEarlyStopFreesQuery: a result left before its end (row limit, sink
// error, cancel) must not keep DuckDB's query state (here a sort of 5M
// rows) alive on an idle pooled connection.
func TestEarlyStopFreesQuery(t *testing.T) {
	e := loaded(t, newFixture(t), Options{MaxConns: 2})
	ctx := context.Background()
	g, err := e.acquire()
	must(t, err)
	defer e.release(g)
	// DuckDB's memory, seen from a connection outside the pool.
	watcher, err := connect(g.db)
	must(t, err)
	defer watcher.close()
	memory := func() int64 {
		n, err := execConn(ctx, watcher, "SELECT coalesce(sum(memory_usage_bytes), 0)::BIGINT FROM duckdb_memory()")
		must(t, err)
		return n
	}
	before := memory()
	const sorted = "SELECT i, 'row ' || i AS s FROM range(5_000_000) t(i) ORDER BY i DESC"

	sum, err := e.RunArrow(ctx, sorted, RunOptions{MaxRows: 10}, &collectArrow{})
	if err != nil || sum.Truncated != TruncatedRows {
		t.Fatalf("truncated query: %+v %v", sum, err)
	}
	if after := memory(); after-before > 16<<20 {
		t.Errorf("DuckDB holds %d MB after a truncated query (%d MB before)", after>>20, before>>20)
	}
	errStop := errors.New("stop")
	if _, err := e.RunArrow(ctx, sorted, RunOptions{}, &failingSink{err: errStop}); !errors.Is(err, errStop) {
		t.Fatalf("sink error: %v", err)
	}
	if after := memory(); after-before > 16<<20 {
		t.Errorf("DuckDB holds %d MB after a sink error (%d MB before)", after>>20, before>>20)
	}
	if cpu := cpuDuring(300 * time.Millisecond); cpu > 150*time.Millisecond {
		t.Errorf("%s of CPU in 300ms after the queries ended", cpu)
	}
	if n := g.pool.openConns(); n > 2 {
		t.Errorf("%d connections open, pool size 2", n)
	}
}

// TestCancelWhileStreaming cancels a query whose sink is slow: DuckDB is
// interrupted, the call returns ErrCanceled, the connection serves the
// next query.
func TestCancelWhileStreaming(t *testing.T) {
	e := loaded(t, newFixture(t), Options{MaxConns: 1})
	ctx, cancel := context.WithCancel(context.Background())
	sink := &slowSink{after: 3, cancel: cancel}
	_, err := e.RunArrow(ctx, "SELECT * FROM range(1_000_000_000) t(i)", RunOptions{MaxRows: 1 << 40}, sink)
	if !errors.Is(err, ErrCanceled) {
		t.Fatalf("err = %v, want ErrCanceled", err)
	}
	if cpu := cpuDuring(300 * time.Millisecond); cpu > 150*time.Millisecond {
		t.Errorf("%s of CPU in 300ms after cancel: the query still runs", cpu)
	}
	var r collectRows
	if _, err := e.RunArrow(context.Background(), "SELECT count(*) FROM orders", RunOptions{}, &r); err != nil || toInt(r.rows[0][0]) != 5000 {
		t.Errorf("after cancel: %v %v", r.rows, err)
	}
}

type failingSink struct {
	collectRows
	err error
}

func (f *failingSink) Batch(arrow.RecordBatch) error { return f.err }

// slowSink cancels its query after a few batches and then keeps the
// engine waiting, like a slow client.
type slowSink struct {
	collectArrow
	after  int
	cancel func()
}

func (s *slowSink) Batch(rec arrow.RecordBatch) error {
	if s.collectArrow.batches++; s.collectArrow.batches == s.after {
		s.cancel()
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// TestPreparedSelectsAreReusedAndBounded: a repeated query reuses its prepared
// statement on the connection (and still answers correctly); a connection keeps at
// most maxPrepared of them.
func TestPreparedSelectsAreReusedAndBounded(t *testing.T) {
	ctx := context.Background()
	e := loaded(t, newFixture(t), Options{MaxConns: 1})
	count := func(q string) int64 {
		var rows collectRows
		_, err := e.RunArrow(ctx, q, RunOptions{}, &rows)
		must(t, err)
		return rows.rows[0][0].(int64)
	}
	for range 3 {
		if n := count("SELECT count(*) FROM orders"); n != 5000 {
			t.Fatalf("count %d", n)
		}
	}
	for i := range maxPrepared + 8 {
		if n := count(fmt.Sprintf("SELECT count(*) + %d FROM orders", i)); n != int64(5000+i) {
			t.Fatalf("query %d: %d", i, n)
		}
	}
	g, err := e.acquire()
	must(t, err)
	defer e.release(g)
	c, err := g.pool.get(ctx)
	must(t, err)
	defer g.pool.put(c)
	if len(c.prepared) != maxPrepared || len(c.recent) != maxPrepared {
		t.Fatalf("kept %d statements (%d recent), want %d", len(c.prepared), len(c.recent), maxPrepared)
	}
}
