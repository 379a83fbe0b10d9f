package extract_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agnesdata/agnes/connectors/extract"
)

func TestPartsMD5(t *testing.T) {
	a := extract.Part{Name: "2026-01", MD5: strings.Repeat("a", 32)}
	b := extract.Part{Name: "2026-02", MD5: strings.Repeat("b", 32)}
	sum := md5.Sum([]byte("2026-01\t" + a.MD5 + "\n2026-02\t" + b.MD5 + "\n"))
	if got, want := extract.PartsMD5([]extract.Part{b, a}), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("PartsMD5 = %s, want %s (sorted lines part<TAB>md5)", got, want)
	}
	c := b
	c.MD5 = strings.Repeat("c", 32)
	if extract.PartsMD5([]extract.Part{a, b}) == extract.PartsMD5([]extract.Part{a, c}) {
		t.Error("PartsMD5 ignores a changed part")
	}
	if extract.PartsMD5([]extract.Part{a, b}) == extract.PartsMD5([]extract.Part{a}) {
		t.Error("PartsMD5 ignores a removed part")
	}
}

// TestPartsFollowTheFolder: a later run rewrites one part, adds one and
// deletes one; _parts keeps the untouched part's recorded hash (it is read
// back, not recomputed), takes the new hashes from the Writer and drops the
// deleted part.
func TestPartsFollowTheFolder(t *testing.T) {
	ctx := context.Background()
	dir, files := writeShop(t)
	// Plant a recognisable hash for 2026-01: if a later commit re-hashed the
	// file instead of reading _parts back, it would disappear.
	fake := strings.Repeat("f", 32)
	exec(t, filepath.Join(dir, extract.DBFile),
		"UPDATE _parts SET md5 = '"+fake+"' WHERE part = '2026-01'",
		"UPDATE _meta SET md5 = '"+extract.PartsMD5([]extract.Part{
			{Name: "2026-01", MD5: fake}, {Name: "2026-02", MD5: files["logs/2026-02"].MD5},
		})+"' WHERE table_name = 'logs'")
	if _, err := extract.Validate(dir); err != nil {
		t.Fatalf("planted extract: %v", err)
	}

	w, err := extract.NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	feb, err := w.WriteQuery(ctx, "logs/2026-02", "SELECT range AS n, 'b' AS msg FROM range(10)")
	if err != nil {
		t.Fatal(err)
	}
	mar, err := w.WriteQuery(ctx, "logs/2026-03", "SELECT 3 AS n, 'c' AS msg")
	if err != nil {
		t.Fatal(err)
	}
	// An Update of another table keeps the recorded hash of 2026-01 and
	// already sees the new parts.
	f, err := w.WriteQuery(ctx, "orders", "SELECT 1 AS id")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(ctx, extract.Table{Meta: f.Meta("Orders")}); err != nil {
		t.Fatal(err)
	}
	logs := readTable(t, dir, "logs")
	want := []extract.Part{
		{Name: "2026-01", MD5: fake, SizeBytes: files["logs/2026-01"].SizeBytes, Rows: 1},
		{Name: "2026-02", MD5: feb.MD5, SizeBytes: feb.SizeBytes, Rows: 10},
		{Name: "2026-03", MD5: mar.MD5, SizeBytes: mar.SizeBytes, Rows: 1},
	}
	if !slices.Equal(logs.Parts, want) {
		t.Fatalf("parts = %+v\nwant    %+v", logs.Parts, want)
	}
	if logs.Rows != 12 || logs.MD5 != extract.PartsMD5(want) || logs.Description != "Logs by month" {
		t.Errorf("logs meta = %+v", logs.Meta)
	}

	// Deleting a part's file drops it at the next commit.
	if err := os.Remove(files["logs/2026-01"].Path); err != nil {
		t.Fatal(err)
	}
	tb, err := w.PartitionedTable(ctx, "logs", "Logs")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(ctx, tb); err != nil {
		t.Fatal(err)
	}
	rep, err := extract.Validate(dir)
	if err != nil {
		t.Fatal(err)
	}
	logs = readTable(t, dir, "logs")
	if !slices.Equal(logs.Parts, want[1:]) || logs.Rows != 11 || logs.MD5 != extract.PartsMD5(want[1:]) {
		t.Errorf("after deleting 2026-01: %+v", logs)
	}
	if len(rep.Contents.Tables) != 4 {
		t.Errorf("tables = %d", len(rep.Contents.Tables))
	}
	// The view reads what _parts lists.
	var n int
	if err := attach(t, dir).QueryRow("SELECT count(*) FROM x.logs").Scan(&n); err != nil || n != 11 {
		t.Errorf("logs view: %d rows, %v", n, err)
	}
}

// TestPartsOfOlderExtracts: an extract written before _parts existed (no
// _parts, no _meta.md5) reads and validates; the next commit computes the
// missing hashes from the files.
func TestPartsOfOlderExtracts(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "old")
	folder := filepath.Join(dir, "data", "logs")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	var want []extract.Part
	for i, part := range []string{"2025-12", "2026-01"} {
		p := filepath.Join(folder, part+".parquet")
		exec(t, "", "COPY (SELECT range AS n FROM range("+string(rune('2'+i))+")) TO '"+p+"' (FORMAT parquet)")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := md5.Sum(b)
		want = append(want, extract.Part{Name: part, MD5: hex.EncodeToString(sum[:]), SizeBytes: int64(len(b)), Rows: int64(2 + i)})
	}
	exec(t, filepath.Join(dir, extract.DBFile),
		"CREATE TABLE _meta (table_name VARCHAR NOT NULL, description TEXT, rows BIGINT, size_bytes BIGINT, extracted_at TIMESTAMP, query_mode VARCHAR)",
		"CREATE VIEW logs AS SELECT * FROM read_parquet('"+filepath.Join(folder, "*.parquet")+"')",
		"INSERT INTO _meta VALUES ('logs', 'Logs', 5, 0, now(), 'local')")
	rep, err := extract.Validate(dir)
	if err != nil {
		t.Fatalf("older extract: %v", err)
	}
	if tb := rep.Contents.Tables[0]; tb.Parts != nil || tb.MD5 != "" {
		t.Errorf("older extract read as %+v", tb)
	}

	w, err := extract.NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	f, err := w.WriteQuery(ctx, "other", "SELECT 1 AS a")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(ctx, extract.Table{Meta: f.Meta("")}); err != nil {
		t.Fatal(err)
	}
	if _, err := extract.Validate(dir); err != nil {
		t.Fatal(err)
	}
	logs := readTable(t, dir, "logs")
	if !slices.Equal(logs.Parts, want) || logs.Rows != 5 || logs.MD5 != extract.PartsMD5(want) ||
		logs.SizeBytes != want[0].SizeBytes+want[1].SizeBytes {
		t.Errorf("logs after update = %+v, want parts %+v", logs, want)
	}
}

// TestStrategySwitch: a table rewritten as parts loses its single file at
// the commit, and the reverse.
func TestStrategySwitch(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "src")
	w, err := extract.NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	f, err := w.WriteQuery(ctx, "t", "SELECT 1 AS a")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(ctx, extract.Table{Meta: f.Meta("")}); err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"a", "b"} {
		if _, err := w.WriteQuery(ctx, "t/"+part, "SELECT 2 AS a"); err != nil {
			t.Fatal(err)
		}
	}
	// No PartitionedTable: Update derives the parts itself.
	if err := w.Update(ctx, extract.Table{Meta: extract.Meta{TableName: "t", QueryMode: extract.ModeLocal}}); err != nil {
		t.Fatal(err)
	}
	if _, err := extract.Validate(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.Path); !os.IsNotExist(err) {
		t.Errorf("single file still there: %v", err)
	}
	if tb := readTable(t, dir, "t"); len(tb.Parts) != 2 || tb.Rows != 2 {
		t.Errorf("partitioned t = %+v", tb)
	}

	f, err = w.WriteQuery(ctx, "t", "SELECT 3 AS a")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(ctx, extract.Table{Meta: f.Meta("")}); err != nil {
		t.Fatal(err)
	}
	if _, err := extract.Validate(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "t")); !os.IsNotExist(err) {
		t.Errorf("part folder still there: %v", err)
	}
	if tb := readTable(t, dir, "t"); tb.Parts != nil || tb.MD5 != f.MD5 {
		t.Errorf("single-file t = %+v", tb)
	}
}

func TestValidateParts(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string, files map[string]extract.File)
		want  []string
	}{
		{"unlisted file", func(t *testing.T, dir string, _ map[string]extract.File) {
			exec(t, "", "COPY (SELECT 1 AS n) TO '"+filepath.Join(dir, "data", "logs", "2026-03.parquet")+"' (FORMAT parquet)")
		}, []string{"logs: logs/2026-03.parquet is not listed in _parts"}},
		{"listed file missing", func(t *testing.T, _ string, files map[string]extract.File) {
			if err := os.Remove(files["logs/2026-02"].Path); err != nil {
				t.Fatal(err)
			}
		}, []string{"logs: part 2026-02 is in _parts but logs/2026-02.parquet is missing"}},
		{"wrong numbers", func(t *testing.T, dir string, _ map[string]extract.File) {
			exec(t, filepath.Join(dir, extract.DBFile),
				"UPDATE _parts SET size_bytes = size_bytes + 1, md5 = 'XYZ' WHERE part = '2026-01'",
				"UPDATE _meta SET md5 = '"+strings.Repeat("0", 32)+"' WHERE table_name = 'logs'")
		}, []string{"logs: part 2026-01: size_bytes", `logs: part 2026-01: md5 "XYZ"`,
			"logs: rows 2 and size_bytes", "logs: md5 \"" + strings.Repeat("0", 32) + "\" is not the hash of its parts"}},
		{"orphans and strays", func(t *testing.T, dir string, _ map[string]extract.File) {
			exec(t, filepath.Join(dir, extract.DBFile),
				"INSERT INTO _parts VALUES ('gone', 'p', NULL, 1, 1), ('orders', 'p', NULL, 1, 1), ('logs', '2026-01', NULL, 0, 0)")
		}, []string{`_parts lists 1 part(s) of "gone", which has no _meta row`,
			"orders: _parts rows for a table stored as the single file orders.parquet",
			"logs: part 2026-01 appears twice in _parts"}},
		{"_parts columns", func(t *testing.T, dir string, _ map[string]extract.File) {
			exec(t, filepath.Join(dir, extract.DBFile),
				"ALTER TABLE _parts DROP COLUMN md5", "ALTER TABLE _parts ALTER rows TYPE INTEGER")
		}, []string{"_parts has no column md5", "_parts.rows is INTEGER, want BIGINT"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, files := writeShop(t)
			tc.setup(t, dir, files)
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

func readTable(t *testing.T, dir, name string) extract.Table {
	t.Helper()
	c, err := extract.Read(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range c.Tables {
		if tb.TableName == name {
			return tb
		}
	}
	t.Fatalf("no table %s in %+v", name, c.Tables)
	return extract.Table{}
}

// TestPartsRewrittenWithoutCommit: a part rewritten after the last commit
// by a run that never committed (it crashed) is hashed again, even when
// its size did not change.
func TestPartsRewrittenWithoutCommit(t *testing.T) {
	ctx := context.Background()
	dir, files := writeShop(t)
	jan := files["logs/2026-01"]
	time.Sleep(10 * time.Millisecond) // a later mtime than extract.duckdb's
	exec(t, "", "COPY (SELECT 9 AS n, 'z' AS msg) TO '"+jan.Path+"' (FORMAT parquet, COMPRESSION zstd)")
	b, err := os.ReadFile(jan.Path)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(b)
	if int64(len(b)) != jan.SizeBytes || hex.EncodeToString(sum[:]) == jan.MD5 {
		t.Fatalf("the rewrite should keep the size (%d, was %d) and change the bytes", len(b), jan.SizeBytes)
	}

	w, err := extract.NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	f, err := w.WriteQuery(ctx, "orders", "SELECT 1 AS id")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(ctx, extract.Table{Meta: f.Meta("")}); err != nil {
		t.Fatal(err)
	}
	if logs := readTable(t, dir, "logs"); logs.Parts[0].MD5 != hex.EncodeToString(sum[:]) {
		t.Errorf("part 2026-01 kept its old hash %s", logs.Parts[0].MD5)
	}
	if _, err := extract.Validate(dir); err != nil {
		t.Fatal(err)
	}
}
