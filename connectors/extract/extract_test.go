package extract_test

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/agnesdata/agnes/connectors/extract"
)

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"orders": true, "_x": true, "A1_b": true, strings.Repeat("a", 64): true,
		"": false, "1a": false, "a-b": false, "a b": false, `a"`: false, strings.Repeat("a", 65): false, "ä": false,
	} {
		if got := extract.ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

// writeShop writes an extract with a query table, a CSV table, a Go-rows
// table and a partitioned table, and returns its directory and files.
func writeShop(t *testing.T) (string, map[string]extract.File) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "extracts", "shop")
	w, err := extract.NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	csv := filepath.Join(t.TempDir(), "customers.csv")
	if err := os.WriteFile(csv, []byte("id,name\n1,Ann\n2,Bob\n3,Cy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := map[string]extract.File{}
	write := func(f extract.File, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Target] = f
	}
	write(w.WriteQuery(ctx, "orders", "SELECT i AS id, i * 1.5 AS amount FROM range(1000) t(i)"))
	write(w.WriteFile(ctx, "customers", csv))
	write(w.WriteRows(ctx, "events", []extract.Column{{"id", "BIGINT"}, {"kind", "VARCHAR"}, {"at", "TIMESTAMP"}},
		func(emit func(...any) error) error {
			for i := range 5 {
				if err := emit(int64(i), "click", time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC)); err != nil {
					return err
				}
			}
			return nil
		}))
	write(w.WriteQuery(ctx, "logs/2026-01", "SELECT 1 AS n, 'a' AS msg"))
	write(w.WriteQuery(ctx, "logs/2026-02", "SELECT 2 AS n, 'b' AS msg, true AS extra"))

	logs, err := w.PartitionedMeta(ctx, "logs", "Logs by month")
	if err != nil {
		t.Fatal(err)
	}
	err = w.Commit(ctx, extract.Contents{Tables: []extract.Table{
		{Meta: files["orders"].Meta("Orders")},
		{Meta: files["customers"].Meta("Customers")},
		{Meta: files["events"].Meta("Events")},
		{Meta: logs},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return dir, files
}

func TestWriterValidateRoundTrip(t *testing.T) {
	dir, files := writeShop(t)

	rep, err := extract.Validate(dir)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := len(rep.Contents.Tables); got != 4 {
		t.Fatalf("tables = %d, want 4", got)
	}

	wantRows := map[string]int64{"orders": 1000, "customers": 3, "events": 5, "logs/2026-01": 1}
	for target, rows := range wantRows {
		f := files[target]
		if f.Rows != rows {
			t.Errorf("%s: rows = %d, want %d", target, f.Rows, rows)
		}
		b, err := os.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if sum := md5.Sum(b); hex.EncodeToString(sum[:]) != f.MD5 || int64(len(b)) != f.SizeBytes {
			t.Errorf("%s: md5/size %s/%d do not match the file bytes", target, f.MD5, f.SizeBytes)
		}
	}

	byName := map[string]extract.Meta{}
	for _, tb := range rep.Contents.Tables {
		byName[tb.TableName] = tb.Meta
	}
	if m := byName["orders"]; m.MD5 != files["orders"].MD5 || m.Rows != 1000 || m.QueryMode != extract.ModeLocal || m.Description != "Orders" {
		t.Errorf("orders meta = %+v", m)
	}
	wantParts := []extract.Part{
		{Name: "2026-01", MD5: files["logs/2026-01"].MD5, SizeBytes: files["logs/2026-01"].SizeBytes, Rows: 1},
		{Name: "2026-02", MD5: files["logs/2026-02"].MD5, SizeBytes: files["logs/2026-02"].SizeBytes, Rows: 1},
	}
	if m := byName["logs"]; m.Rows != 2 || m.MD5 != extract.PartsMD5(wantParts) ||
		m.SizeBytes != wantParts[0].SizeBytes+wantParts[1].SizeBytes {
		t.Errorf("logs meta = %+v, want 2 rows, the parts' size and their hash", m)
	}
	for _, tb := range rep.Contents.Tables {
		switch {
		case tb.TableName == "logs" && !slices.Equal(tb.Parts, wantParts):
			t.Errorf("logs parts = %+v, want %+v", tb.Parts, wantParts)
		case tb.TableName != "logs" && tb.Parts != nil:
			t.Errorf("%s has parts %+v", tb.TableName, tb.Parts)
		}
	}

	// Views reference Parquet by absolute path, so they resolve from any
	// working directory; the partitioned view unions the shards by name.
	db := attach(t, dir)
	var n, extra int
	if err := db.QueryRow("SELECT count(*), count(extra) FROM x.logs").Scan(&n, &extra); err != nil || n != 2 || extra != 1 {
		t.Fatalf("logs view: n=%d extra=%d err=%v", n, extra, err)
	}
	var view string
	if err := db.QueryRow("SELECT sql FROM duckdb_views() WHERE view_name = 'orders'").Scan(&view); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(view, filepath.Join(dir, "data", "orders.parquet")) {
		t.Errorf("orders view does not use the absolute path: %s", view)
	}

	// Nothing half-written is left behind.
	leftovers, _ := filepath.Glob(filepath.Join(dir, "data", ".*"))
	more, _ := filepath.Glob(filepath.Join(dir, "*tmp*"))
	if len(leftovers)+len(more) > 0 {
		t.Errorf("temp files left: %v %v", leftovers, more)
	}
}

func TestUpdateRewritesOnlyOneTable(t *testing.T) {
	ctx := context.Background()
	dir, files := writeShop(t)
	before, err := os.Stat(files["customers"].Path)
	if err != nil {
		t.Fatal(err)
	}

	w, err := extract.NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	f, err := w.WriteQuery(ctx, "orders", "SELECT 7 AS id")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(ctx, extract.Table{Meta: f.Meta("Orders v2")}); err != nil {
		t.Fatal(err)
	}

	rep, err := extract.Validate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Contents.Tables) != 4 {
		t.Fatalf("tables = %d, want 4", len(rep.Contents.Tables))
	}
	for _, tb := range rep.Contents.Tables {
		if tb.TableName == "orders" && (tb.Rows != 1 || tb.MD5 != f.MD5 || tb.Description != "Orders v2") {
			t.Errorf("orders not updated: %+v", tb.Meta)
		}
	}
	after, err := os.Stat(files["customers"].Path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || !before.ModTime().Equal(after.ModTime()) {
		t.Error("customers.parquet was rewritten by an update of orders")
	}
}

// A Writer's Update starts from what it committed last, unless another
// writer has replaced extract.duckdb since: then from the file.
func TestUpdateAfterAnotherWriter(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "shop")
	update := func(w *extract.Writer, table string, rows int) {
		t.Helper()
		f, err := w.WriteQuery(ctx, table, fmt.Sprintf("SELECT * FROM range(%d) t(id)", rows))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Update(ctx, extract.Table{Meta: f.Meta(table)}); err != nil {
			t.Fatal(err)
		}
	}
	tables := func() map[string]int64 {
		t.Helper()
		c, err := extract.Read(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, tb := range c.Tables {
			out[tb.TableName] = tb.Rows
		}
		return out
	}
	w1, w2 := mustNewWriter(t, dir), mustNewWriter(t, dir)
	update(w1, "a", 1)
	update(w1, "b", 2) // from w1's own commit
	update(w2, "c", 3) // w2 has committed nothing: from the file
	update(w1, "a", 4) // w2 replaced the file w1 wrote: from the file again
	if got, want := tables(), map[string]int64{"a": 4, "b": 2, "c": 3}; !maps.Equal(got, want) {
		t.Fatalf("tables after updates by two writers = %v, want %v", got, want)
	}
}

func mustNewWriter(t *testing.T, dir string) *extract.Writer {
	t.Helper()
	w, err := extract.NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func TestRemoteTables(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	// A DuckDB file stands in for a remote source: ATTACH (TYPE duckdb)
	// needs no extension download.
	remote := filepath.Join(base, "remote.duckdb")
	exec(t, remote, "CREATE TABLE deals AS SELECT range AS id FROM range(3)")

	dir := filepath.Join(base, "extracts", "crm")
	w, err := extract.NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c := extract.Contents{
		Remotes: []extract.RemoteAttach{{Alias: "rem", Extension: "duckdb", URL: remote}},
		Tables: []extract.Table{{
			Meta: extract.Meta{TableName: "deals", QueryMode: extract.ModeRemote, Rows: 3},
			View: "SELECT * FROM rem.main.deals",
		}},
	}
	if err := w.Commit(ctx, c); err != nil {
		t.Fatal(err)
	}
	f, err := w.WriteQuery(ctx, "notes", "SELECT 'x' AS note")
	if err != nil {
		t.Fatal(err)
	}
	// Update keeps the remote row and its view, re-attaching the remote.
	if err := w.Update(ctx, extract.Table{Meta: f.Meta("")}); err != nil {
		t.Fatal(err)
	}
	rep, err := extract.Validate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Contents.Remotes) != 1 || rep.Contents.Remotes[0] != c.Remotes[0] {
		t.Errorf("remotes = %+v", rep.Contents.Remotes)
	}
	for _, tb := range rep.Contents.Tables {
		if tb.TableName == "deals" && tb.View != "SELECT * FROM rem.main.deals" {
			t.Errorf("remote view = %q", tb.View)
		}
	}

	// A remote table without its view, and a bad alias, are refused.
	if err := w.Commit(ctx, extract.Contents{Tables: []extract.Table{{Meta: extract.Meta{TableName: "x", QueryMode: extract.ModeRemote}}}}); err == nil {
		t.Error("remote table without view committed")
	}
	if err := w.Commit(ctx, extract.Contents{Remotes: []extract.RemoteAttach{{Alias: "a;b", Extension: "duckdb", URL: remote}}}); err == nil {
		t.Error("bad alias committed")
	}
}

func TestWriterRejectsBadTargets(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "src")
	w, err := extract.NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, target := range []string{"", "1x", "a-b", "_meta", "_agnes_sources", "t/../x", "t/", "../x"} {
		if _, err := w.WriteQuery(ctx, target, "SELECT 1"); err == nil {
			t.Errorf("WriteQuery(%q) succeeded", target)
		}
	}
	if _, err := w.WriteRows(ctx, "t", []extract.Column{{"a", "INT); DROP TABLE x; --"}}, nil); err == nil {
		t.Error("WriteRows accepted a type that ends the statement")
	}
	if _, err := extract.NewWriter(filepath.Join(t.TempDir(), "bad-name")); err == nil {
		t.Error("NewWriter accepted an invalid source name")
	}
	// A failing query leaves no file behind.
	if _, err := w.WriteQuery(ctx, "t", "SELECT * FROM no_such_table"); err == nil {
		t.Error("bad query succeeded")
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "data")); len(entries) != 0 {
		t.Errorf("files left: %v", entries)
	}
}

func TestValidateFindsEveryProblem(t *testing.T) {
	const goodMeta = `CREATE TABLE _meta (table_name VARCHAR NOT NULL, description TEXT, rows BIGINT,
		size_bytes BIGINT, extracted_at TIMESTAMP, query_mode VARCHAR)`
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string) // dir exists, data/ has t.parquet
		want  []string                       // substrings of problems, each must appear
	}{
		{"missing extract.duckdb", func(t *testing.T, dir string) {}, []string{"no extract.duckdb"}},
		{"garbage file", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "extract.duckdb"), "this is not a database at all, not even close....")
		}, []string{"cannot open read-only"}},
		{"no _meta", func(t *testing.T, dir string) {
			exec(t, filepath.Join(dir, "extract.duckdb"), "CREATE TABLE other (a INT)")
		}, []string{"no _meta table"}},
		{"_meta columns", func(t *testing.T, dir string) {
			exec(t, filepath.Join(dir, "extract.duckdb"),
				"CREATE TABLE _meta (table_name VARCHAR, description TEXT, rows INTEGER, size_bytes BIGINT, query_mode VARCHAR)")
		}, []string{"_meta has no column extracted_at", "_meta.rows is INTEGER, want BIGINT"}},
		{"bad rows", func(t *testing.T, dir string) {
			exec(t, filepath.Join(dir, "extract.duckdb"), goodMeta,
				"CREATE VIEW t AS SELECT * FROM read_parquet('"+filepath.Join(dir, "data", "t.parquet")+"')",
				"CREATE VIEW weird AS SELECT 1 AS a",
				`INSERT INTO _meta VALUES
					('t', '', 1, 1, now(), 'local'),
					('T', '', 1, 1, now(), 'local'),
					('bad-name', '', 1, 1, now(), 'local'),
					('_meta', '', 1, 1, now(), 'local'),
					('missing', '', 1, 1, now(), 'local'),
					('neg', '', -1, 0, now(), 'local'),
					('weird', '', 1, 1, now(), 'sometimes')`)
		}, []string{
			"t: size_bytes 1 but t.parquet has", "T: appears twice", "bad-name: not a valid table name",
			"_meta: reserved", "missing: no view or table", "neg: negative rows", `weird: query_mode "sometimes"`,
		}},
		{"view over missing parquet", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "data", "t.parquet")
			exec(t, filepath.Join(dir, "extract.duckdb"), goodMeta,
				"CREATE VIEW t AS SELECT * FROM read_parquet('"+p+"')",
				"INSERT INTO _meta VALUES ('t', '', 1, 0, now(), 'local')")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, []string{"t: local table without Parquet", "t: cannot be queried"}},
		{"table without parquet", func(t *testing.T, dir string) {
			exec(t, filepath.Join(dir, "extract.duckdb"), goodMeta,
				"CREATE TABLE u AS SELECT 1 AS a",
				"INSERT INTO _meta VALUES ('u', '', 1, 0, now(), 'local')")
		}, []string{"u: local table without Parquet"}},
		{"bad md5 and remote without attach", func(t *testing.T, dir string) {
			exec(t, filepath.Join(dir, "extract.duckdb"),
				goodMeta, "ALTER TABLE _meta ADD COLUMN md5 VARCHAR",
				"CREATE VIEW t AS SELECT * FROM read_parquet('"+filepath.Join(dir, "data", "t.parquet")+"')",
				"CREATE VIEW r AS SELECT 1 AS a",
				"INSERT INTO _meta VALUES ('t', '', 1, 0, now(), 'local', 'XYZ'), ('r', '', 1, 0, now(), 'remote', NULL)")
		}, []string{"t: md5 \"XYZ\"", "r: remote table but no _remote_attach"}},
		{"bad _remote_attach", func(t *testing.T, dir string) {
			exec(t, filepath.Join(dir, "extract.duckdb"), goodMeta,
				"CREATE TABLE _remote_attach (alias VARCHAR, extension VARCHAR, url VARCHAR, token_env VARCHAR)",
				`INSERT INTO _remote_attach VALUES ('kbc', 'keboola', '', NULL), ('bad alias', 'keboola', 'u', NULL),
					('bq', 'bigquery', 'project=x', 'lower_case'), ('kbc', 'keboola', 'u', NULL), ('src', 'duckdb', 'u', NULL)`)
		}, []string{"alias kbc: url is empty", `alias "bad alias" is not a valid name`, `token_env "lower_case"`,
			"alias kbc appears twice", "alias src is the source's own name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "src")
			if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
				t.Fatal(err)
			}
			exec(t, "", "COPY (SELECT 1 AS a) TO '"+filepath.Join(dir, "data", "t.parquet")+"' (FORMAT parquet)")
			tc.setup(t, dir)
			rep, err := extract.Validate(dir)
			if err == nil {
				t.Fatal("Validate found nothing wrong")
			}
			var got []string
			for _, p := range rep.Problems {
				got = append(got, p.String())
			}
			all := strings.Join(got, "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("missing problem %q in:\n%s", w, all)
				}
			}
		})
	}
}

func TestValidateSourceName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my-source")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rep, _ := extract.Validate(dir)
	if len(rep.Problems) != 2 || !strings.Contains(rep.Problems[0].Message, `source name "my-source"`) {
		t.Errorf("problems = %v, want source name and missing file", rep.Problems)
	}
}

func TestReadMissing(t *testing.T) {
	if _, err := extract.Read(context.Background(), t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of an empty dir: %v, want not-exist", err)
	}
}

// exec runs statements on a DuckDB file ("" for in-memory) and closes it.
func exec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// attach opens an in-memory DuckDB with the extract in dir attached as x.
func attach(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("ATTACH '" + filepath.Join(dir, "extract.duckdb") + "' AS x (READ_ONLY)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("USE x"); err != nil {
		t.Fatal(err)
	}
	return db
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWatermark: a table's watermark is committed with its row and kept by
// updates of other tables; extracts without the column read it as empty.
func TestWatermark(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "kbc")
	w, err := extract.NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	orders, err := w.WriteQuery(ctx, "orders", "SELECT 1 AS id")
	if err != nil {
		t.Fatal(err)
	}
	meta := orders.Meta("")
	meta.Watermark = "2026-05-19T10:56:57Z"
	if err := w.Update(ctx, extract.Table{Meta: meta}); err != nil {
		t.Fatal(err)
	}
	other, err := w.WriteQuery(ctx, "other", "SELECT 2 AS id")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(ctx, extract.Table{Meta: other.Meta("")}); err != nil {
		t.Fatal(err)
	}
	rep, err := extract.Validate(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, tb := range rep.Contents.Tables {
		got[tb.TableName] = tb.Watermark
	}
	if got["orders"] != meta.Watermark || got["other"] != "" {
		t.Errorf("watermarks = %v, want orders %s and other empty", got, meta.Watermark)
	}

	// A watermark column of another type breaks the contract.
	exec(t, filepath.Join(dir, extract.DBFile), "ALTER TABLE _meta DROP COLUMN watermark", "ALTER TABLE _meta ADD COLUMN watermark BIGINT")
	if _, err := extract.Validate(dir); err == nil || !strings.Contains(err.Error(), "_meta.watermark is BIGINT, want VARCHAR") {
		t.Errorf("Validate with a BIGINT watermark: %v", err)
	}
}
