package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/orchestrator"
)

// fixture is a data directory with two sources and a remote:
//
//	shop: orders (5000 rows), logs (partitioned, 2 files)
//	crm:  customers (3 rows), accounts (remote view over a DuckDB file attached as wh)
type fixture struct {
	data string
	orch *orchestrator.Orchestrator
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	data := t.TempDir()
	w := writer(t, data, "shop")
	orders, err := w.WriteQuery(ctx, "orders", "SELECT range AS id, range * 0.5 AS amount, 'note ' || range AS note FROM range(5000)")
	must(t, err)
	_, err = w.WriteQuery(ctx, "logs/2026-01", "SELECT 1 AS n")
	must(t, err)
	_, err = w.WriteQuery(ctx, "logs/2026-02", "SELECT 2 AS n")
	must(t, err)
	logs, err := w.PartitionedMeta(ctx, "logs", "")
	must(t, err)
	must(t, w.Commit(ctx, extract.Contents{Tables: []extract.Table{{Meta: orders.Meta("")}, {Meta: logs}}}))

	remote := filepath.Join(t.TempDir(), "warehouse.duckdb")
	execFile(t, remote, "CREATE TABLE accounts AS SELECT range AS id FROM range(4)")

	w = writer(t, data, "crm")
	customers, err := w.WriteQuery(ctx, "customers", "SELECT * FROM (VALUES (1, 'Ann'), (2, 'Bob'), (3, 'Cy')) t(id, name)")
	must(t, err)
	must(t, w.Commit(ctx, extract.Contents{
		Remotes: []extract.RemoteAttach{{Alias: "wh", Extension: "duckdb", URL: remote}},
		Tables: []extract.Table{
			{Meta: customers.Meta("")},
			{Meta: extract.Meta{TableName: "accounts", QueryMode: extract.ModeRemote}, View: "SELECT * FROM wh.main.accounts"},
		},
	}))
	return &fixture{data: data, orch: orchestrator.New(data, orchestrator.Options{RemoteExtensions: []string{"duckdb"}})}
}

func (f *fixture) rebuild(t testing.TB) *orchestrator.Result {
	t.Helper()
	res, err := f.orch.Rebuild(context.Background())
	must(t, err)
	if len(res.Problems) > 0 {
		t.Fatalf("rebuild problems: %v", res.Problems)
	}
	return res
}

// loaded returns an engine with the fixture's first generation loaded.
func loaded(t testing.TB, f *fixture, opts Options) *Engine {
	t.Helper()
	e := New(opts)
	t.Cleanup(func() { e.Close() })
	res := f.rebuild(t)
	warnings, err := e.Load(context.Background(), res.Master, res.Generation)
	must(t, err)
	if len(warnings) > 0 {
		t.Fatalf("load warnings: %v", warnings)
	}
	return e
}

func TestRunArrow(t *testing.T) {
	ctx := context.Background()
	e := loaded(t, newFixture(t), Options{})

	var rows collectRows
	sum, err := e.RunArrow(ctx, "SELECT id, amount, note FROM orders ORDER BY id DESC;", RunOptions{}, &rows)
	must(t, err)
	if sum.Rows != 5000 || len(rows.rows) != 5000 || sum.Truncated != NotTruncated || sum.Generation != 1 {
		t.Fatalf("summary %+v, %d rows", sum, len(rows.rows))
	}
	if rows.batches < 3 || rows.rows[0][0] != int64(4999) || rows.rows[0][2] != "note 4999" {
		t.Errorf("batches=%d first=%v", rows.batches, rows.rows[0])
	}
	want := []Column{{"id", "BIGINT"}, {"amount", "DECIMAL(21,1)"}, {"note", "VARCHAR"}}
	if !slices.Equal(rows.cols, want) {
		t.Errorf("columns = %v, want %v", rows.cols, want)
	}
	// Describe gives the same columns without reading a row.
	cols, err := e.Describe(ctx, "SELECT id, amount, note FROM orders", RunOptions{})
	must(t, err)
	if !slices.Equal(cols, want) {
		t.Errorf("Describe = %v, want %v", cols, want)
	}

	var arr collectArrow
	sum, err = e.RunArrow(ctx, "FROM orders -- a trailing comment", RunOptions{}, &arr)
	must(t, err)
	if sum.Rows != 5000 || arr.rows != 5000 || arr.batches < 3 || arr.schema.NumFields() != 3 {
		t.Errorf("arrow: summary %+v, %d rows in %d batches", sum, arr.rows, arr.batches)
	}

	// Partitioned and remote views resolve through the generation's attachments.
	for q, want := range map[string]int64{
		"SELECT sum(n)::BIGINT FROM logs": 3,
		"SELECT count(*) FROM accounts":   4,
		"SELECT count(*) FROM Customers":  3,
	} {
		var r collectRows
		_, err := e.RunArrow(ctx, q, RunOptions{}, &r)
		must(t, err)
		if got := toInt(r.rows[0][0]); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
}

func TestLimitsTruncate(t *testing.T) {
	ctx := context.Background()
	e := loaded(t, newFixture(t), Options{MaxRows: 100})

	cases := []struct {
		name      string
		query     string
		opts      RunOptions
		rows      int64
		truncated Truncation
	}{
		{"engine default rows", "SELECT * FROM orders", RunOptions{}, 100, TruncatedRows},
		{"exactly the limit is not truncated", "SELECT * FROM orders LIMIT 100", RunOptions{}, 100, NotTruncated},
		{"request rows", "SELECT * FROM orders", RunOptions{MaxRows: 3000}, 3000, TruncatedRows},
		{"bytes", "SELECT * FROM orders", RunOptions{MaxRows: 5000, MaxBytes: 10_000}, -1, TruncatedBytes},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var arr collectArrow
			sum, err := e.RunArrow(ctx, tc.query, tc.opts, &arr)
			must(t, err)
			if sum.Truncated != tc.truncated || sum.Rows != arr.rows || (tc.rows >= 0 && arr.rows != tc.rows) {
				t.Errorf("summary %+v with %d rows; want %d rows, truncated %q", sum, arr.rows, tc.rows, tc.truncated)
			}
			if tc.opts.MaxBytes > 0 && (sum.Bytes > tc.opts.MaxBytes || arr.rows == 0) {
				t.Errorf("%d bytes in %d rows for a %d byte limit", sum.Bytes, arr.rows, tc.opts.MaxBytes)
			}
		})
	}
}

// TestCancelInterruptsDuckDB cancels a query that would run for minutes and
// checks that it stops inside DuckDB: the call returns quickly, the process
// stops burning CPU and the pool connection is fine afterwards.
func TestCancelInterruptsDuckDB(t *testing.T) {
	e := loaded(t, newFixture(t), Options{MaxConns: 1})
	const long = "SELECT count(*) FROM range(10000000000)"

	ctx, cancel := context.WithCancel(context.Background())
	var cancelled atomic.Int64
	time.AfterFunc(300*time.Millisecond, func() {
		cancelled.Store(time.Now().UnixNano())
		cancel()
	})
	_, err := e.RunArrow(ctx, long, RunOptions{}, &collectRows{})
	took := time.Since(time.Unix(0, cancelled.Load()))
	if !errors.Is(err, ErrCanceled) {
		t.Fatalf("err = %v, want ErrCanceled", err)
	}
	t.Logf("returned %s after cancel", took)
	if took > 2*time.Second {
		t.Errorf("cancelled query returned %s after cancel", took)
	}
	if cpu := cpuDuring(500 * time.Millisecond); cpu > 250*time.Millisecond {
		t.Errorf("%s of CPU in the 500ms after cancel: the query still runs", cpu)
	}

	start := time.Now()
	_, err = e.RunArrow(context.Background(), long, RunOptions{Timeout: 300 * time.Millisecond}, &collectArrow{})
	if !errors.Is(err, ErrTimeout) || time.Since(start) > 2*time.Second {
		t.Errorf("timeout: err = %v after %s", err, time.Since(start))
	}

	var rows collectRows
	_, err = e.RunArrow(context.Background(), "SELECT count(*) FROM orders", RunOptions{}, &rows)
	if err != nil || toInt(rows.rows[0][0]) != 5000 {
		t.Errorf("connection after interrupts: %v %v", err, rows.rows)
	}
}

func TestPerUserCap(t *testing.T) {
	e := loaded(t, newFixture(t), Options{MaxUserQueries: 2})
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			_, err := e.RunArrow(context.Background(), "SELECT 1", RunOptions{User: "ann"}, &blockingSink{started: started, release: release})
			if err != nil {
				t.Error(err)
			}
		})
	}
	<-started
	<-started
	if _, err := e.RunArrow(context.Background(), "SELECT 1", RunOptions{User: "ann"}, &collectRows{}); !errors.Is(err, ErrTooManyQueries) {
		t.Errorf("third query of ann: %v, want ErrTooManyQueries", err)
	}
	if _, err := e.RunArrow(context.Background(), "SELECT 1", RunOptions{User: "bob"}, &collectRows{}); err != nil {
		t.Errorf("bob is capped by ann's queries: %v", err)
	}
	close(release)
	wg.Wait()
	if _, err := e.RunArrow(context.Background(), "SELECT 1", RunOptions{User: "ann"}, &collectRows{}); err != nil {
		t.Errorf("ann after her queries ended: %v", err)
	}
}

// TestSwapUnderLoad swaps generations while four goroutines query in a loop.
func TestSwapUnderLoad(t *testing.T) {
	f := newFixture(t)
	e := loaded(t, f, Options{})
	var failures, queries atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				var n int64
				if i%2 == 0 {
					var r collectRows
					_, err = e.RunArrow(context.Background(), "SELECT count(*) FROM orders JOIN customers ON orders.id = customers.id", RunOptions{User: "u"}, &r)
					if err == nil {
						n = toInt(r.rows[0][0])
					}
				} else {
					var a collectArrow
					_, err = e.RunArrow(context.Background(), "SELECT * FROM orders WHERE id < 3", RunOptions{User: "u"}, &a)
					n = a.rows
				}
				queries.Add(1)
				if err == nil && n != 3 {
					err = fmt.Errorf("got %d rows", n)
				}
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	var last *orchestrator.Result
	for range 6 {
		last = f.rebuild(t)
		if _, err := e.Load(context.Background(), last.Master, last.Generation); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failures.Load() > 0 || queries.Load() == 0 {
		t.Fatalf("%d of %d queries failed; first: %v", failures.Load(), queries.Load(), firstErr.Load())
	}
	if e.Generation() != last.Generation {
		t.Errorf("generation = %d, want %d", e.Generation(), last.Generation)
	}
	// Every replaced generation closed and deleted its file.
	files, _ := filepath.Glob(filepath.Join(f.data, "analytics", "gen", "*"))
	if len(files) != 1 || files[0] != last.Master {
		t.Errorf("generation files left: %v", files)
	}
}

func TestOldGenerationClosesAfterLastQuery(t *testing.T) {
	f := newFixture(t)
	e := loaded(t, f, Options{})
	first := filepath.Join(f.data, "analytics", "gen", "1.duckdb")

	release := make(chan struct{})
	started := make(chan struct{}, 1)
	done := make(chan Summary)
	go func() {
		sum, err := e.RunArrow(context.Background(), "SELECT count(*) FROM orders", RunOptions{}, &blockingSink{started: started, release: release})
		if err != nil {
			t.Error(err)
		}
		done <- sum
	}()
	<-started

	next := f.rebuild(t)
	if _, err := e.Load(context.Background(), next.Master, next.Generation); err != nil {
		t.Fatal(err)
	}
	var r collectRows
	sum, err := e.RunArrow(context.Background(), "SELECT count(*) FROM orders", RunOptions{}, &r)
	if err != nil || sum.Generation != 2 {
		t.Fatalf("new query: generation %d, %v", sum.Generation, err)
	}
	if _, err := os.Stat(first); err != nil {
		t.Fatalf("generation 1 deleted while a query runs on it: %v", err)
	}

	close(release)
	if sum := <-done; sum.Generation != 1 || sum.Rows != 1 {
		t.Errorf("in-flight query: %+v", sum)
	}
	if _, err := os.Stat(first); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("generation 1 still on disk after its last query: %v", err)
	}
}

// TestHardening runs hostile statements straight on a generation's pool,
// past the engine's own single-SELECT check: the instance settings alone
// must stop them while the views keep working.
func TestHardening(t *testing.T) {
	f := newFixture(t)
	e := loaded(t, f, Options{})
	outside := filepath.Join(t.TempDir(), "x.parquet")
	execFile(t, "", "COPY (SELECT 1 AS a) TO '"+outside+"' (FORMAT parquet)")
	orders := filepath.Join(f.data, "extracts", "shop", "data", "orders.parquet")

	g, err := e.acquire()
	must(t, err)
	defer e.release(g)
	ctx := context.Background()
	c, err := g.pool.get(ctx)
	must(t, err)
	defer g.pool.put(c)

	for _, q := range []string{
		"SELECT * FROM read_csv('/etc/passwd')",
		"SELECT * FROM read_text('/etc/hostname')",
		"FROM '" + outside + "'",
		"FROM glob('/etc/*')",
		"COPY (SELECT 1) TO '" + filepath.Join(t.TempDir(), "out.csv") + "'",
		"COPY (SELECT 1 AS id) TO '" + orders + "' (FORMAT parquet)",
		"COPY (SELECT 1 AS id) TO '" + filepath.Join(filepath.Dir(orders), "new.parquet") + "' (FORMAT parquet)",
		"INSTALL httpfs",
		"LOAD httpfs",
		"SET threads = 1",
		"SET enable_external_access = true",
		"RESET lock_configuration",
		"SET allowed_directories = ['/']",
		"ATTACH '" + filepath.Join(t.TempDir(), "new.duckdb") + "' AS y",
		"ATTACH ':memory:' AS m",
		"FROM 'https://example.com/x.parquet'",
	} {
		if _, err := execConn(ctx, c, q); err == nil {
			t.Errorf("hardened instance ran: %s", q)
		}
	}
	if n, err := execConn(ctx, c, "SELECT count(*) FROM orders"); err != nil || n != 5000 {
		t.Errorf("views after hardening: n=%d err=%v", n, err)
	}
}

// execConn runs any statement on a pooled connection, past the engine's
// single-SELECT check, and returns the first value if it is an integer.
func execConn(ctx context.Context, c *conn, q string) (int64, error) {
	st, err := c.query(ctx, q, false)
	if err != nil {
		return 0, err
	}
	defer st.close()
	n := int64(-1)
	for {
		rec, err := st.next()
		if rec == nil || err != nil {
			return n, err
		}
		if a, ok := rec.Column(0).(*array.Int64); ok && n < 0 {
			n = a.Value(0)
		}
		rec.Release()
	}
}

// TestOnlyOneSelect: what the settings do not cover (DETACH, USE, SET of a
// session variable, a second statement) the engine refuses before DuckDB
// executes anything.
func TestOnlyOneSelect(t *testing.T) {
	e := loaded(t, newFixture(t), Options{})
	for _, q := range []string{
		"DETACH shop",
		"USE crm",
		"SET search_path = 'crm'",
		"CREATE TEMP TABLE t AS SELECT 1",
		"SELECT 1; DETACH shop",
		"SELECT 1) t; DETACH shop; SELECT * FROM (SELECT 1",
		"CALL enable_logging()",
		"PRAGMA database_list",
		"EXPLAIN SELECT 1",
		"SELEC 1",
	} {
		_, err := e.RunArrow(context.Background(), q, RunOptions{}, &collectRows{})
		if !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("%s: err = %v, want ErrInvalidQuery", q, err)
		}
	}
	var r collectRows
	if _, err := e.RunArrow(context.Background(), "SELECT count(*) FROM orders", RunOptions{}, &r); err != nil || toInt(r.rows[0][0]) != 5000 {
		t.Errorf("views after refused statements: %v %v", r.rows, err)
	}
}

func TestErrorsHideServerPaths(t *testing.T) {
	f := newFixture(t)
	e := loaded(t, f, Options{})
	for _, q := range []string{
		"SELECT * FROM read_parquet('" + filepath.Join(f.data, "extracts", "shop", "data", "nope.parquet") + "')",
		"SELECT * FROM read_csv('/etc/passwd')",
		"SELECT no_such_column FROM orders",
	} {
		_, err := e.RunArrow(context.Background(), q, RunOptions{}, &collectRows{})
		var qe *QueryError
		if !errors.As(err, &qe) {
			t.Fatalf("%s: err = %v, want *QueryError", q, err)
		}
		if strings.Contains(qe.Message, f.data) || strings.Contains(qe.Message, "/etc") || strings.Contains(qe.Message, "LINE") {
			t.Errorf("message leaks: %q", qe.Message)
		}
	}
}

func TestCleanMessage(t *testing.T) {
	for in, want := range map[string]string{
		`IO Error: No files found that match the pattern "/srv/data/extracts/s/data/t.parquet"`: `IO Error: No files found that match the pattern "t.parquet"`,
		"Binder Error: x\n\nLINE 1: SELECT * FROM (\n^":                                         "Binder Error: x",
		"Conversion Error: 1 / 0 and https://host/a/b":                                          "Conversion Error: 1 / 0 and https://host/a/b",
		"at /tmp/a/b, then": "at b, then",
	} {
		if got := cleanMessage(in); got != want {
			t.Errorf("cleanMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestViewsAndState(t *testing.T) {
	e := New(Options{})
	if _, err := e.RunArrow(context.Background(), "SELECT 1", RunOptions{}, &collectRows{}); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("before Load: %v", err)
	}
	e = loaded(t, newFixture(t), Options{})
	if got, want := e.Views(), []string{"accounts", "customers", "logs", "orders"}; !slices.Equal(got, want) {
		t.Errorf("views = %v, want %v", got, want)
	}
	if name, ok := e.LookupView("ORDERS"); !ok || name != "orders" {
		t.Errorf("LookupView(ORDERS) = %q, %v", name, ok)
	}
	if _, ok := e.LookupView("_agnes_sources"); ok {
		t.Error("the master's bookkeeping table is visible as a view")
	}
	if _, err := e.Load(context.Background(), "/nowhere/1.duckdb", e.Generation()); err != nil || e.Generation() != 1 {
		t.Errorf("a load of the current generation again: %v, generation %d", err, e.Generation())
	}
	if _, err := e.RunArrow(context.Background(), "SELECT 1", RunOptions{}, &collectRows{}); err != nil {
		t.Errorf("after a refused load: %v", err)
	}
	must(t, e.Close())
	if _, err := e.RunArrow(context.Background(), "SELECT 1", RunOptions{}, &collectRows{}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// TestAttachIsInstanceWide checks the DuckDB fact the engine relies on:
// attachments made once on the setup connection reach every pooled one.
func TestAttachIsInstanceWide(t *testing.T) {
	e := loaded(t, newFixture(t), Options{MaxConns: 3})
	g, err := e.acquire()
	must(t, err)
	defer e.release(g)
	ctx := context.Background()
	for range 3 {
		c, err := g.pool.get(ctx) // each is another connection: none are returned
		must(t, err)
		defer g.pool.put(c)
		if n, err := execConn(ctx, c, "SELECT count(*) FROM crm.main.customers"); err != nil || n != 3 {
			t.Errorf("attached catalog on a new connection: %d %v", n, err)
		}
		// Opened before the lock, each took the streaming buffer setting
		// (976.5 KiB is DuckDB's default).
		if n, err := execConn(ctx, c, "SELECT (current_setting('streaming_buffer_size') <> '976.5 KiB')::BIGINT"); err != nil || n != 1 {
			t.Errorf("streaming buffer not set on a pooled connection: %d %v", n, err)
		}
	}
	if n := g.pool.openConns(); n != 3 {
		t.Errorf("open connections = %d, want 3", n)
	}
}

type collectRows struct {
	cols    []Column
	rows    [][]any
	batches int
}

func (c *collectRows) Columns(cols []Column) error { c.cols = cols; return nil }
func (c *collectRows) Schema(*arrow.Schema) error  { return nil }

// Batch keeps the rows as the setup connection's database/sql values.
func (c *collectRows) Batch(rec arrow.RecordBatch) error {
	for i := range int(rec.NumRows()) {
		row := make([]any, rec.NumCols())
		for j, col := range rec.Columns() {
			row[j] = driverValue(col, i)
		}
		c.rows = append(c.rows, row)
	}
	c.batches++
	return nil
}

type collectArrow struct {
	schema  *arrow.Schema
	rows    int64
	batches int
}

func (c *collectArrow) Schema(s *arrow.Schema) error { c.schema = s; return nil }
func (c *collectArrow) Batch(rec arrow.RecordBatch) error {
	c.rows += rec.NumRows()
	c.batches++
	return nil
}

// blockingSink holds its query open until release is closed.
type blockingSink struct {
	collectRows
	started chan<- struct{}
	release <-chan struct{}
}

func (b *blockingSink) Columns(cols []Column) error {
	b.started <- struct{}{}
	<-b.release
	return b.collectRows.Columns(cols)
}

// cpuDuring returns the CPU time the process uses over d.
func cpuDuring(d time.Duration) time.Duration {
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	time.Sleep(d)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	return time.Duration(after.Utime.Nano() - before.Utime.Nano() + after.Stime.Nano() - before.Stime.Nano())
}

func toInt(v any) int64 {
	switch v := v.(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	}
	return -1
}

func writer(t testing.TB, data, source string) *extract.Writer {
	t.Helper()
	w, err := extract.NewWriter(orchestrator.ExtractDir(data, source))
	must(t, err)
	t.Cleanup(func() { w.Close() })
	return w
}

func execFile(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("duckdb", path)
	must(t, err)
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
