// Package connectortest is the conformance suite every connector runs from
// its own tests:
//
//	func TestConformance(t *testing.T) {
//		connectortest.Run(t, func(t *testing.T) connectors.Connector { return demo.New() })
//	}
//
// Run extracts every table the connector discovers (and any extra Case)
// into a temporary extract folder with a real extract.Writer, and checks
// what the sync pipeline and the orchestrator rely on: the returned
// extract.Table names the spec's table and matches the Parquet actually
// written (rows, size, MD5 recomputed here, parts of a partitioned table),
// the pipeline's Update yields an extract that extract.Validate accepts and
// whose views return Meta.Rows rows, a second extract replaces files by
// rename and leaves no temp files, a cancelled context fails Extract, and
// an unknown table fails with connectors.ErrNotFound.
package connectortest

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2" // the database/sql driver the checks query through

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/extract"
)

// MissingTable is the id (and source table) Run asks for to check that an
// unknown table fails with connectors.ErrNotFound.
const MissingTable = "connectortest_missing"

// Case is a table to extract besides the discovered ones, e.g. another
// strategy, or a source table under another id.
type Case struct {
	// Name names the subtests; default Spec.ID.
	Name string
	// Spec is what Extract is asked for. IDs must be unique across the
	// discovered tables and the cases: all go into one extract.
	Spec connectors.TableSpec
	// Remote: the table is expected to be remote (QueryMode remote, a
	// view, no Parquet written). Run checks the returned Table only: the
	// Connector interface cannot yet describe the remote sources an
	// extract must ATTACH (its _remote_attach rows), so the table cannot
	// be committed, validated or queried here.
	Remote bool
	// Check, if set, runs after the pipeline's Update with db an
	// in-memory DuckDB where the extract is attached read-only and is the
	// default catalog (so the table is just its id).
	Check func(t *testing.T, db *sql.DB, tbl extract.Table)
}

func (c Case) name() string {
	if c.Name != "" {
		return c.Name
	}
	return c.Spec.ID
}

// Spec is the TableSpec the registry would hold after registering d with
// the full_refresh strategy.
func Spec(d connectors.Discovered) connectors.TableSpec {
	return connectors.TableSpec{
		ID: d.ID, Name: d.Name, Description: d.Description, Bucket: d.Bucket,
		SourceTable: d.SourceTable, Strategy: connectors.StrategyFullRefresh, PrimaryKey: d.PrimaryKey,
	}
}

// Run runs the conformance suite against the connector newConnector
// returns; see the package comment.
func Run(t *testing.T, newConnector func(t *testing.T) connectors.Connector, cases ...Case) {
	t.Helper()
	ctx := context.Background()
	c := newConnector(t)
	typ := c.Type()
	if !extract.ValidName(typ) {
		t.Fatalf("Type() = %q: not a valid source name (it names the extract folder)", typ)
	}

	found, err := c.Discover(ctx)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	var all []Case
	for _, d := range found {
		if id, err := connectors.TableID(d.ID); err != nil || id != d.ID {
			t.Errorf("Discover: id %q is not a registry id (TableID gives %q, %v)", d.ID, id, err)
			continue
		}
		all = append(all, Case{Spec: Spec(d)})
	}
	all = append(all, cases...)
	if len(all) == 0 {
		t.Fatal("nothing to test: Discover found no tables and no cases were given")
	}
	seen := map[string]bool{}
	for _, cs := range all {
		if seen[strings.ToLower(cs.Spec.ID)] {
			t.Fatalf("table id %q is used twice (discovered tables and cases share one extract)", cs.Spec.ID)
		}
		seen[strings.ToLower(cs.Spec.ID)] = true
	}
	if t.Failed() {
		return
	}

	dir := filepath.Join(t.TempDir(), typ)
	w, err := extract.NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	db := openDuckDB(t)

	tables := make([]extract.Table, len(all))
	ok := make([]bool, len(all))
	for i, cs := range all {
		t.Run("extract/"+cs.name(), func(t *testing.T) {
			tbl, err := c.Extract(ctx, cs.Spec, w)
			if err != nil {
				t.Fatalf("Extract(%+v): %v", cs.Spec, err)
			}
			checkTable(t, db, dir, cs, tbl)
			tables[i], ok[i] = tbl, !t.Failed()
		})
	}
	if slices.Contains(ok, false) {
		return
	}

	// The pipeline records every table of a run in one Update.
	var local []extract.Table
	for i, cs := range all {
		if !cs.Remote {
			local = append(local, tables[i])
		}
	}
	if err := w.Update(ctx, local...); err != nil {
		t.Fatalf("Update: %v", err)
	}
	rep, err := extract.Validate(dir)
	if err != nil {
		t.Fatalf("Validate after Update: %v", err)
	}
	attach(t, db, dir)
	for i, cs := range all {
		if cs.Remote {
			continue
		}
		t.Run("query/"+cs.name(), func(t *testing.T) {
			got := findTable(rep.Contents.Tables, cs.Spec.ID)
			if got == nil {
				t.Fatalf("table %s is not in the extract", cs.Spec.ID)
			}
			want := tables[i]
			if got.Rows != want.Rows || got.SizeBytes != want.SizeBytes || got.MD5 != want.MD5 ||
				got.QueryMode != want.QueryMode || !slices.Equal(got.Parts, want.Parts) {
				t.Errorf("extract records %+v (parts %v)\nExtract returned %+v (parts %v)", got.Meta, got.Parts, want.Meta, want.Parts)
			}
			var n int64
			if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+quoteIdent(cs.Spec.ID)).Scan(&n); err != nil {
				t.Fatalf("count through the view: %v", err)
			}
			if n != want.Rows {
				t.Errorf("the view returns %d rows, Meta.Rows = %d", n, want.Rows)
			}
			if cs.Check != nil {
				cs.Check(t, db, *got)
			}
		})
	}

	for i, cs := range all {
		if cs.Remote {
			continue
		}
		t.Run("re-extract/"+cs.name(), func(t *testing.T) { checkReplace(t, c, w, dir, cs, tables[i]) })
	}

	t.Run("cancelled", func(t *testing.T) {
		cs := all[0]
		for _, c := range all {
			if !c.Remote {
				cs = c
				break
			}
		}
		before := snapshot(t, dir)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := c.Extract(cctx, cs.Spec, w); err == nil {
			t.Fatalf("Extract(%s) with a cancelled context succeeded", cs.Spec.ID)
		}
		if after := snapshot(t, dir); !maps(before, after) {
			t.Errorf("a cancelled Extract changed data/:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("not found", func(t *testing.T) {
		spec := connectors.TableSpec{ID: MissingTable, Name: MissingTable, SourceTable: MissingTable,
			Strategy: connectors.StrategyFullRefresh}
		_, err := c.Extract(ctx, spec, w)
		if !errors.Is(err, connectors.ErrNotFound) {
			t.Errorf("Extract of an unknown table: %v, want an error wrapping connectors.ErrNotFound", err)
		}
		if _, err := os.Stat(filepath.Join(dir, extract.DataDir, MissingTable+".parquet")); err == nil {
			t.Error("Extract of an unknown table wrote a file")
		}
	})
}

// checkTable compares the returned table with the files in data/.
func checkTable(t *testing.T, db *sql.DB, dir string, cs Case, tbl extract.Table) {
	t.Helper()
	id := cs.Spec.ID
	switch {
	case tbl.TableName != id:
		t.Fatalf("TableName = %q, want the spec's id %q", tbl.TableName, id)
	case !extract.ValidName(tbl.TableName) || extract.Reserved(tbl.TableName):
		t.Fatalf("TableName %q is not a valid table name", tbl.TableName)
	case tbl.Rows < 0 || tbl.SizeBytes < 0:
		t.Errorf("negative rows %d or size %d", tbl.Rows, tbl.SizeBytes)
	}
	if cs.Remote {
		if tbl.QueryMode != extract.ModeRemote || tbl.View == "" {
			t.Errorf("remote table: QueryMode %q, View %q", tbl.QueryMode, tbl.View)
		}
		file := filepath.Join(dir, extract.DataDir, id+".parquet")
		if _, err := os.Stat(file); err == nil {
			t.Errorf("remote table wrote %s", file)
		}
		return
	}
	if tbl.QueryMode != extract.ModeLocal {
		t.Errorf("QueryMode = %q, want %q", tbl.QueryMode, extract.ModeLocal)
	}
	checkNoTemp(t, dir)
	file := filepath.Join(dir, extract.DataDir, id+".parquet")
	folder := filepath.Join(dir, extract.DataDir, id)
	_, fileErr := os.Stat(file)
	parts, _ := filepath.Glob(filepath.Join(folder, "*.parquet"))
	switch {
	case fileErr == nil && len(parts) > 0:
		t.Fatalf("both %s and %s/ exist", file, folder)
	case fileErr == nil:
		sum, size := hashFile(t, file)
		if tbl.MD5 != sum || tbl.SizeBytes != size {
			t.Errorf("Meta MD5/size = %s/%d, the file has %s/%d", tbl.MD5, tbl.SizeBytes, sum, size)
		}
		if n := parquetRows(t, db, file); n != tbl.Rows {
			t.Errorf("Meta.Rows = %d, the file has %d rows", tbl.Rows, n)
		}
		if tbl.Parts != nil {
			t.Errorf("a single-file table has parts %v", tbl.Parts)
		}
	case len(parts) > 0:
		var want []extract.Part
		var rows, size int64
		for _, p := range parts {
			sum, n := hashFile(t, p)
			part := extract.Part{Name: strings.TrimSuffix(filepath.Base(p), ".parquet"), MD5: sum, SizeBytes: n, Rows: parquetRows(t, db, p)}
			want = append(want, part)
			rows += part.Rows
			size += part.SizeBytes
		}
		if !slices.Equal(tbl.Parts, want) {
			t.Errorf("Parts = %+v\nthe files are %+v", tbl.Parts, want)
		}
		if tbl.MD5 != extract.PartsMD5(want) || tbl.Rows != rows || tbl.SizeBytes != size {
			t.Errorf("Meta MD5/rows/size = %s/%d/%d, the parts give %s/%d/%d", tbl.MD5, tbl.Rows, tbl.SizeBytes,
				extract.PartsMD5(want), rows, size)
		}
	default:
		t.Fatalf("no Parquet for %s: neither %s nor %s/*.parquet", id, file, folder)
	}
}

// checkReplace extracts a table again while holding its current file open:
// the old bytes must stay readable through the open handle (the file was
// replaced by rename, not rewritten in place), and no temp file may remain.
func checkReplace(t *testing.T, c connectors.Connector, w *extract.Writer, dir string, cs Case, first extract.Table) {
	t.Helper()
	path := filepath.Join(dir, extract.DataDir, cs.Spec.ID+".parquet")
	want := first.MD5
	if len(first.Parts) > 0 {
		path = filepath.Join(dir, extract.DataDir, cs.Spec.ID, first.Parts[0].Name+".parquet")
		want = first.Parts[0].MD5
	}
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldInfo, err := old.Stat()
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Extract(context.Background(), cs.Spec, w)
	if err != nil {
		t.Fatalf("second Extract: %v", err)
	}
	if again.TableName != cs.Spec.ID {
		t.Errorf("second Extract: TableName %q", again.TableName)
	}
	h := md5.New()
	if _, err := io.Copy(h, old); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("the file open before the second Extract now reads %s, was %s: rewritten in place, not replaced by rename", got, want)
	}
	newInfo, err := os.Stat(path)
	if err != nil {
		t.Fatalf("after the second Extract: %v", err)
	}
	if os.SameFile(oldInfo, newInfo) {
		t.Errorf("%s is the same file after the second Extract: not replaced by rename", path)
	}
	checkNoTemp(t, dir)
}

// checkNoTemp fails on hidden or temp files under data/.
func checkNoTemp(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(filepath.Join(dir, extract.DataDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name := d.Name(); strings.HasPrefix(name, ".") || strings.Contains(name, ".tmp") {
			t.Errorf("temp file left in data/: %s", p)
		}
		return nil
	})
}

// snapshot maps each file under data/ to its MD5.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = filepath.WalkDir(filepath.Join(dir, extract.DataDir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out[p], _ = hashFile(t, p)
		}
		return err
	})
	return out
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func findTable(tables []extract.Table, id string) *extract.Table {
	for i := range tables {
		if strings.EqualFold(tables[i].TableName, id) {
			return &tables[i]
		}
	}
	return nil
}

func hashFile(t *testing.T, path string) (string, int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:]), int64(len(b))
}

func parquetRows(t *testing.T, db *sql.DB, path string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow("SELECT count(*) FROM read_parquet(" + quoteString(path) + ")").Scan(&n); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return n
}

// openDuckDB opens a private in-memory DuckDB on one connection, so that
// ATTACH and USE apply to every later query.
func openDuckDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// attach attaches the extract read-only as the default catalog.
func attach(t *testing.T, db *sql.DB, dir string) {
	t.Helper()
	for _, q := range []string{
		"ATTACH " + quoteString(filepath.Join(dir, extract.DBFile)) + " AS conformance (READ_ONLY)",
		"USE conformance",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func quoteIdent(s string) string  { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
