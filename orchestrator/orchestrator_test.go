package orchestrator_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/orchestrator"
)

// TestDuckDBSharesInstancesByPath pins down the DuckDB behaviour that makes
// generations need their own paths: within one process a second open of a
// path returns the instance already open there, even after another file
// was renamed over that path, and a different configuration is refused.
func TestDuckDBSharesInstancesByPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.duckdb")
	execSQL(t, path, "CREATE TABLE v AS SELECT 1 AS n")

	old := openRO(t, path)
	if got := queryInt(t, old, "SELECT n FROM v"); got != 1 {
		t.Fatalf("old = %d", got)
	}

	next := filepath.Join(dir, "next.duckdb")
	execSQL(t, next, "CREATE TABLE v AS SELECT 2 AS n")
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	again := openRO(t, path)
	if got := queryInt(t, again, "SELECT n FROM v"); got != 1 {
		t.Fatalf("reopened path while the old instance is open: n = %d; DuckDB no longer shares instances by path, revisit ADR 0006", got)
	}

	rw, err := sql.Open("duckdb", path)
	if err == nil {
		err = rw.Ping()
		rw.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "different configuration") {
		t.Fatalf("read-write open of a path open read-only: %v", err)
	}

	// A second name for the same file (a hard link) is a separate instance.
	link := filepath.Join(dir, "gen.duckdb")
	if err := os.Link(path, link); err != nil {
		t.Fatal(err)
	}
	if got := queryInt(t, openRO(t, link), "SELECT n FROM v"); got != 2 {
		t.Fatalf("hard link: n = %d, want the new file's 2", got)
	}
}

// dataDir lays out sources that exercise every rebuild path:
//
//	alpha   good: orders, shared
//	beta    shared (claimed by alpha), items, deals (remote over an extension that does not exist),
//	        and remotes the policy refuses (extension, token variable)
//	broken  garbage bytes
//	gamma   good: a remote view over a DuckDB file (TYPE duckdb), allowed in the test options
//	bad-name, empty  skipped
func dataDir(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	data := t.TempDir()

	writeExtract(t, data, "alpha", map[string]string{
		"orders": "SELECT range AS id FROM range(10)",
		"shared": "SELECT 'alpha' AS owner",
	})
	writeExtract(t, data, "bad-name", map[string]string{"x": "SELECT 1 AS a"}) // invalid name: skipped
	if err := os.MkdirAll(filepath.Join(data, "extracts", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "extracts", "README"), []byte("not a source"), 0o644); err != nil {
		t.Fatal(err)
	}

	// beta: a remote view created while a stand-in is attached as kbc; the
	// _remote_attach row names an extension that cannot be installed.
	beta := writeExtract(t, data, "beta", map[string]string{
		"shared": "SELECT 'beta' AS owner",
		"items":  "SELECT 1 AS item",
	})
	standIn := filepath.Join(t.TempDir(), "kbc.duckdb")
	execSQL(t, standIn, "CREATE TABLE deals AS SELECT 1 AS id")
	execSQL(t, filepath.Join(beta, extract.DBFile),
		"ATTACH '"+standIn+"' AS kbc (READ_ONLY)",
		"CREATE VIEW deals AS SELECT * FROM kbc.main.deals",
		"INSERT INTO _meta (table_name, description, rows, size_bytes, extracted_at, query_mode) VALUES ('deals', 'Deals', 1, 0, now(), 'remote')",
		"CREATE TABLE _remote_attach (alias VARCHAR, extension VARCHAR, url VARCHAR, token_env VARCHAR)",
		"INSERT INTO _remote_attach VALUES ('kbc', 'agnes_no_such_ext', 'https://connection.keboola.com', 'KBC_TOKEN'),"+
			"('x1', 'evil', 'u', NULL), ('x2', 'duckdb', '"+standIn+"', 'JWT_SECRET')")

	if err := os.MkdirAll(filepath.Join(data, "extracts", "broken"), 0o755); err != nil {
		t.Fatal(err)
	}
	garbage := []byte(strings.Repeat("not a duckdb file ", 300))
	if err := os.WriteFile(filepath.Join(data, "extracts", "broken", extract.DBFile), garbage, 0o644); err != nil {
		t.Fatal(err)
	}

	remote := filepath.Join(t.TempDir(), "warehouse.duckdb")
	execSQL(t, remote, "CREATE TABLE accounts AS SELECT range AS id FROM range(4)")
	w, err := extract.NewWriter(orchestrator.ExtractDir(data, "gamma"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = w.Commit(ctx, extract.Contents{
		Remotes: []extract.RemoteAttach{{Alias: "wh", Extension: "duckdb", URL: remote}},
		Tables: []extract.Table{{
			Meta: extract.Meta{TableName: "accounts", QueryMode: extract.ModeRemote, Rows: 4},
			View: "SELECT * FROM wh.main.accounts",
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func testOptions() orchestrator.Options {
	return orchestrator.Options{
		RemoteExtensions: []string{"agnes_no_such_ext", "duckdb"},
		TokenEnvs:        []string{"KBC_TOKEN"},
		Getenv:           func(string) string { return "secret-token" },
	}
}

func TestRebuild(t *testing.T) {
	data := dataDir(t)
	res, err := orchestrator.New(data, testOptions()).Rebuild(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	var views []string
	for _, v := range res.Views {
		views = append(views, v.Source+"."+v.TableName)
	}
	slices.Sort(views)
	if want := []string{"alpha.orders", "alpha.shared", "beta.items", "gamma.accounts"}; !slices.Equal(views, want) {
		t.Errorf("views = %v, want %v", views, want)
	}
	var sources []string
	for _, s := range res.Sources {
		sources = append(sources, s.Name)
	}
	if want := []string{"alpha", "beta", "gamma"}; !slices.Equal(sources, want) {
		t.Errorf("sources = %v, want %v", sources, want)
	}

	wantProblems := []struct {
		kind          orchestrator.ProblemKind
		source, table string
	}{
		{orchestrator.ProblemSkipped, "bad-name", ""},
		{orchestrator.ProblemSkipped, "empty", ""},
		{orchestrator.ProblemBroken, "broken", ""},
		{orchestrator.ProblemRemote, "beta", ""}, // agnes_no_such_ext cannot be installed
		{orchestrator.ProblemRemote, "beta", ""}, // evil is not an allowed extension
		{orchestrator.ProblemRemote, "beta", ""}, // JWT_SECRET is not an allowed token variable
		{orchestrator.ProblemRemote, "beta", "deals"},
		{orchestrator.ProblemConflict, "beta", "shared"},
	}
	for _, w := range wantProblems {
		if !slices.ContainsFunc(res.Problems, func(p orchestrator.Problem) bool {
			return p.Kind == w.kind && p.Source == w.source && p.Table == w.table
		}) {
			t.Errorf("missing problem %s %s.%s in %v", w.kind, w.source, w.table, res.Problems)
		}
	}
	if len(res.Problems) != len(wantProblems) {
		t.Errorf("problems = %v, want %d", res.Problems, len(wantProblems))
	}
	all := fmt.Sprint(res.Problems)
	for _, want := range []string{"install extension agnes_no_such_ext", "extension evil is not allowed", "token_env JWT_SECRET is not allowed"} {
		if !strings.Contains(all, want) {
			t.Errorf("no problem says %q", want)
		}
	}
	if strings.Contains(all, "secret-token") {
		t.Errorf("token leaked into a problem: %s", all)
	}

	for _, v := range res.Views {
		if v.TableName == "orders" && (v.Rows != 10 || v.MD5 == "" || v.QueryMode != extract.ModeLocal) {
			t.Errorf("orders view meta = %+v", v.Meta)
		}
	}

	// The master is published under its generation path and as server.duckdb.
	if res.Master != filepath.Join(data, "analytics", "gen", fmt.Sprint(res.Generation)+".duckdb") {
		t.Errorf("master = %s", res.Master)
	}
	a, err := os.Stat(res.Master)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.Stat(filepath.Join(data, "analytics", "server.duckdb"))
	if err != nil || !os.SameFile(a, b) {
		t.Fatalf("server.duckdb is not the generation file: %v", err)
	}

	// Attaching what _agnes_sources lists is enough for every view to resolve.
	db := openMaster(t, res.Master)
	for view, want := range map[string]int{"orders": 10, "shared": 1, "items": 1, "accounts": 4} {
		if got := queryInt(t, db, "SELECT count(*) FROM "+view); got != want {
			t.Errorf("%s: %d rows, want %d", view, got, want)
		}
	}
	if got := queryString(t, db, "SELECT owner FROM shared"); got != "alpha" {
		t.Errorf("shared is owned by %s, want alpha (first in sorted order)", got)
	}
}

func TestRebuildEmptyDataDir(t *testing.T) {
	res, err := orchestrator.New(t.TempDir(), orchestrator.Options{}).Rebuild(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Views)+len(res.Problems)+len(res.Sources) != 0 || res.Generation != 1 {
		t.Errorf("result = %+v", res)
	}
}

// TestRebuildSwapKeepsReaders rebuilds while readers query the previous
// generation and server.duckdb as opened before the swap.
func TestRebuildSwapKeepsReaders(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	writeExtract(t, data, "alpha", map[string]string{"orders": "SELECT range AS id FROM range(10)"})
	o := orchestrator.New(data, orchestrator.Options{})
	first, err := o.Rebuild(ctx)
	if err != nil {
		t.Fatal(err)
	}
	readers := []*sql.DB{openMaster(t, first.Master), openRO(t, filepath.Join(data, "analytics", "server.duckdb"))}
	if _, err := readers[1].Exec("ATTACH '" + first.Sources[0].Path + "' AS alpha (READ_ONLY)"); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	queries := 0
	for _, db := range readers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var n int
				err := db.QueryRow("SELECT count(*) FROM orders").Scan(&n)
				mu.Lock()
				queries++
				if err != nil || n != 10 {
					failures = append(failures, fmt.Errorf("n=%d: %w", n, err))
				}
				mu.Unlock()
			}
		})
	}
	var last *orchestrator.Result
	for range 5 {
		writeExtract(t, data, "beta", map[string]string{"items": "SELECT 1 AS item"})
		if last, err = o.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 || queries == 0 {
		t.Fatalf("%d of %d reader queries failed: %v", len(failures), queries, failures[0])
	}
	if last.Generation != first.Generation+5 {
		t.Errorf("generation %d after 5 rebuilds from %d", last.Generation, first.Generation)
	}
	// New readers of the newest generation see the new view.
	if got := queryInt(t, openMaster(t, last.Master), "SELECT count(*) FROM items"); got != 1 {
		t.Errorf("items = %d", got)
	}
}

func TestRebuildCoalescesConcurrentCalls(t *testing.T) {
	data := t.TempDir()
	writeExtract(t, data, "alpha", map[string]string{"orders": "SELECT 1 AS id"})
	o := orchestrator.New(data, orchestrator.Options{})
	const calls = 12
	gens := make(chan uint64, calls)
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			res, err := o.Rebuild(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			gens <- res.Generation
		})
	}
	wg.Wait()
	close(gens)
	distinct := map[uint64]bool{}
	for g := range gens {
		distinct[g] = true
	}
	if len(distinct) == 0 || len(distinct) > calls/2 {
		t.Errorf("%d calls ran %d rebuilds; concurrent calls should share rebuilds", calls, len(distinct))
	}
	files, _ := filepath.Glob(filepath.Join(data, "analytics", "gen", "*"))
	for _, f := range files {
		if !strings.HasSuffix(f, ".duckdb") {
			t.Errorf("leftover %s", f)
		}
	}
}

func TestRebuildClearsStaleGenerations(t *testing.T) {
	data := t.TempDir()
	gen := filepath.Join(data, "analytics", "gen")
	if err := os.MkdirAll(gen, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"7.duckdb", "9.duckdb", "9.duckdb.wal", "10.duckdb.build"} {
		if err := os.WriteFile(filepath.Join(gen, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := orchestrator.New(data, orchestrator.Options{}).Rebuild(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Generation != 11 {
		t.Errorf("generation = %d, want 11 (numbers are never reused)", res.Generation)
	}
	files, _ := filepath.Glob(filepath.Join(gen, "*"))
	if len(files) != 1 || files[0] != res.Master {
		t.Errorf("gen dir = %v, want only %s", files, res.Master)
	}
}

func TestRebuildWaitHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	data := t.TempDir()
	if _, err := orchestrator.New(data, orchestrator.Options{}).Rebuild(ctx); err == nil {
		t.Error("Rebuild with a cancelled context returned no error")
	}
	if _, err := os.Stat(filepath.Join(data, "analytics")); err == nil {
		t.Error("a rebuild started for a caller that had already given up")
	}
}

// TestRebuildSkipsLockedExtract holds an extract open for writing in another
// process (DuckDB's file lock is per process) and rebuilds around it.
func TestRebuildSkipsLockedExtract(t *testing.T) {
	data := t.TempDir()
	writeExtract(t, data, "alpha", map[string]string{"orders": "SELECT 1 AS id"})
	locked := writeExtract(t, data, "beta", map[string]string{"items": "SELECT 1 AS item"})

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$")
	cmd.Env = append(os.Environ(), "AGNES_HOLD_LOCK="+filepath.Join(locked, extract.DBFile))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close() // the helper exits when its stdin closes
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper: %q %v", line, err)
	}

	start := time.Now()
	res, err := orchestrator.New(data, orchestrator.Options{}).Rebuild(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Views) != 1 || res.Views[0].TableName != "orders" {
		t.Errorf("views = %+v, want alpha.orders only", res.Views)
	}
	if len(res.Problems) != 1 || res.Problems[0].Kind != orchestrator.ProblemBroken || res.Problems[0].Source != "beta" ||
		!strings.Contains(res.Problems[0].Message, "lock") {
		t.Errorf("problems = %v, want beta broken by a lock", res.Problems)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("rebuild around a locked extract took %s", took)
	}
}

// TestHelperHoldLock is not a test: TestRebuildSkipsLockedExtract runs it in
// a child process to hold a write lock on an extract.
func TestHelperHoldLock(t *testing.T) {
	path := os.Getenv("AGNES_HOLD_LOCK")
	if path == "" {
		t.Skip("helper process only")
	}
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS lock_holder (a INT)"); err != nil {
		t.Fatal(err)
	}
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
}

// writeExtract writes source's extract with one local table per query and
// returns its directory.
func writeExtract(t *testing.T, data, source string, tables map[string]string) string {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(data, "extracts", source)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !extract.ValidName(source) {
		// The Writer refuses invalid source names; lay this one out by hand.
		execSQL(t, filepath.Join(dir, extract.DBFile),
			"CREATE TABLE _meta (table_name VARCHAR NOT NULL, description TEXT, rows BIGINT, size_bytes BIGINT, extracted_at TIMESTAMP, query_mode VARCHAR)")
		return dir
	}
	w, err := extract.NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var c extract.Contents
	for name, q := range tables {
		f, err := w.WriteQuery(ctx, name, q)
		if err != nil {
			t.Fatal(err)
		}
		c.Tables = append(c.Tables, extract.Table{Meta: f.Meta(name)})
	}
	if err := w.Commit(ctx, c); err != nil {
		t.Fatal(err)
	}
	return dir
}

// openMaster opens a master read-only with what its _agnes_sources lists
// attached, as the query engine does.
func openMaster(t *testing.T, path string) *sql.DB {
	t.Helper()
	ctx := context.Background()
	db := openRO(t, path)
	db.SetMaxOpenConns(2)
	srcs, err := orchestrator.ReadSources(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range srcs {
		if err := extract.Attach(ctx, db, s.Path, s.Name); err != nil {
			t.Fatal(err)
		}
		for _, r := range s.Remotes {
			if err := extract.AttachRemote(ctx, db, r, "", false); err != nil {
				t.Fatal(err)
			}
		}
	}
	return db
}

func openRO(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", path+"?access_mode=READ_ONLY")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func execSQL(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func queryInt(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func queryString(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	var s string
	if err := db.QueryRow(q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}
