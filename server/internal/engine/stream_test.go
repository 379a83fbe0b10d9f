package engine

import (
	"context"
	"database/sql"
	"database/sql/driver"
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
			if sink.first > total/10 || sink.first > time.Second {
				t.Errorf("first batch after %s of %s: the result is not streamed", sink.first, total)
			}
		})
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
