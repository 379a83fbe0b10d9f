package upload_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/connectortest"
	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/connectors/upload"
)

const salesCSV = "id,name,amount,day,paid\n1,Ann,10.5,2026-01-02,true\n2,Bob,7,2026-01-03,false\n3,Cy,0.25,2026-01-04,true\n"

func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) connectors.Connector {
		dir := t.TempDir()
		store(t, dir, "sales", salesCSV)
		store(t, dir, "people", "\xef\xbb\xbfFirst Name;Last-Name;Ünïcode (x)\nAnn;Lee;1\r\nBob;\"Ray; Jr.\";2\r\n")
		store(t, dir, "metrics", string(parquetBytes(t, "SELECT range AS id, range * 0.5 AS value, 'm' || range AS label FROM range(1000)")))
		return upload.New(dir)
	}, connectortest.Case{
		// Registered under another id than the file's.
		Spec: connectors.TableSpec{ID: "sales_copy", SourceTable: "sales.csv"},
		Check: func(t *testing.T, db *sql.DB, tbl extract.Table) {
			var total float64
			if err := db.QueryRow("SELECT sum(amount) FROM sales_copy").Scan(&total); err != nil || total != 17.75 {
				t.Errorf("sum(amount) = %v, %v", total, err)
			}
		},
	})
}

func TestCSVFormats(t *testing.T) {
	cases := []struct {
		name    string
		content string
		cols    string // name type, ...
		rows    int
		check   string // a query that must return true
	}{
		{"header and types", salesCSV, "id BIGINT, name VARCHAR, amount DOUBLE, day DATE, paid BOOLEAN", 3,
			"SELECT sum(amount) = 17.75 AND max(day) = DATE '2026-01-04' FROM t"},
		{"no trailing newline", "a,b\n1,x\n2,y", "a BIGINT, b VARCHAR", 2, "SELECT max(b) = 'y' FROM t"},
		{"semicolons", "id;price;note\n1;2,50;a, b\n2;3,75;c\n", "id BIGINT, price VARCHAR, note VARCHAR", 2,
			"SELECT list(price ORDER BY id) = ['2,50', '3,75'] AND min(note) = 'a, b' FROM t"},
		{"tabs", "a\tb\n1\t2\n", "a BIGINT, b BIGINT", 1, "SELECT a + b = 3 FROM t"},
		{"quoted commas, quotes and newlines", "id,text\n1,\"a, b\"\n2,\"line 1\nline 2\"\n3,\"say \"\"hi\"\"\"\n4,5\" screen\n",
			"id BIGINT, text VARCHAR", 4,
			`SELECT list(text ORDER BY id) = ['a, b', e'line 1\nline 2', 'say "hi"', '5" screen'] FROM t`},
		{"utf-8 BOM", "\xef\xbb\xbfid,city\n1,Brno\n2,Zürich\n", "id BIGINT, city VARCHAR", 2, "SELECT max(city) = 'Zürich' FROM t"},
		{"crlf", "a,b\r\n1,2\r\n3,4\r\n", "a BIGINT, b BIGINT", 2, "SELECT sum(b) = 6 FROM t"},
		{"odd column names", "First Name,Amount (EUR),x-y,\"a \"\"q\"\"\",Ünï\nAnn,1,2,3,4\n",
			`First Name VARCHAR, Amount (EUR) BIGINT, x-y BIGINT, a "q" BIGINT, Ünï BIGINT`, 1,
			`SELECT "First Name" = 'Ann' AND "Amount (EUR)" = 1 AND "a ""q""" = 3 FROM t`},
		{"header only", "a,b\n", "a VARCHAR, b VARCHAR", 0, "SELECT count(*) = 0 FROM t"},
		{"one column", "word\nalpha\nbeta\n", "word VARCHAR", 2, "SELECT min(word) = 'alpha' FROM t"},
		{"long field", "a,b\n1,\"" + strings.Repeat("x", 1_999_000) + "\"\n", "a BIGINT, b VARCHAR", 1, "SELECT length(b) = 1999000 FROM t"},
		{"blank lines", "a,b\n\n1,2\n\n3,4\n", "a BIGINT, b BIGINT", 2, "SELECT sum(a) = 4 FROM t"},
		{"mixed line ends", "a,b\n1,2\r\n3,\"x\r\ny\"\n5,6\r7,8\n", "a BIGINT, b VARCHAR", 4,
			"SELECT list(b ORDER BY a) = ['2', e'x\r\ny', '6', '8'] FROM t"},
		{"excel: crlf, lf in cells", "a,b\r\n1,\"x\ny\"\r\n2,z\r\n", "a BIGINT, b VARCHAR", 2,
			"SELECT list(b ORDER BY a) = [e'x\ny', 'z'] FROM t"},
		{"comma in the header's quotes", "\"price (EUR, net)\";qty\n9,50;3\n1,25;4\n", "price (EUR, net) VARCHAR, qty BIGINT", 2,
			"SELECT sum(qty) = 7 FROM t"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			name, kind, _ := store(t, dir, "t", tc.content)
			if name != "t.csv" || kind != upload.KindCSV {
				t.Fatalf("stored as %s (%s)", name, kind)
			}
			db, tbl := extractOne(t, dir, connectors.TableSpec{ID: "t", SourceTable: name})
			if tbl.Rows != int64(tc.rows) {
				t.Errorf("rows = %d, want %d", tbl.Rows, tc.rows)
			}
			if got := describe(t, db, "t"); got != tc.cols {
				t.Errorf("columns = %s\nwant      %s", got, tc.cols)
			}
			var ok bool
			if err := db.QueryRow(tc.check).Scan(&ok); err != nil || !ok {
				t.Errorf("%s: %v %v", tc.check, ok, err)
			}
		})
	}
}

func TestParquetUpload(t *testing.T) {
	dir := t.TempDir()
	src := parquetBytes(t, `SELECT range AS id, [range, 2] AS list, {'k': 'v'} AS "odd name", DATE '2026-01-01' + range::INT AS day FROM range(10)`)
	name, kind, size := store(t, dir, "events", string(src))
	if name != "events.parquet" || kind != upload.KindParquet || size != int64(len(src)) {
		t.Fatalf("stored %s %s %d", name, kind, size)
	}
	db, tbl := extractOne(t, dir, connectors.TableSpec{ID: "events"}) // bare id: either format
	if tbl.Rows != 10 || tbl.Description != "Uploaded from events.parquet" {
		t.Errorf("meta = %+v", tbl.Meta)
	}
	if got, want := describe(t, db, "events"), "id BIGINT, list BIGINT[], odd name STRUCT(k VARCHAR), day DATE"; got != want {
		t.Errorf("columns = %s, want %s", got, want)
	}

	// Replacing the upload with a CSV removes the Parquet.
	if name, _, _ := store(t, dir, "events", "id\n1\n"); name != "events.csv" {
		t.Fatalf("stored %s", name)
	}
	if _, err := os.Stat(filepath.Join(dir, "events.parquet")); !os.IsNotExist(err) {
		t.Errorf("events.parquet is still there: %v", err)
	}
	// A registry row still naming events.parquet extracts the new upload.
	if _, tbl := extractOne(t, dir, connectors.TableSpec{ID: "events", SourceTable: "events.parquet"}); tbl.Rows != 1 {
		t.Errorf("after the re-upload as CSV: %+v", tbl.Meta)
	}
}

// bigCSV returns a CSV of id,amount with n data rows after the header, the
// row with id == bad replaced by line.
func bigCSV(n, bad int, line string) string {
	var b strings.Builder
	b.WriteString("id,amount,note\n")
	for i := 1; i <= n; i++ {
		switch {
		case i == bad:
			b.WriteString(line)
		case i == 10:
			b.WriteString("10,10,\"a note\nover two lines\"\n") // DuckDB does not count this line break
		default:
			fmt.Fprintf(&b, "%d,%d,n%d\n", i, i*3, i)
		}
	}
	return b.String()
}

// TestMalformedCSV: every malformed file fails with an InputError naming
// the line as an editor counts it, without paths or DuckDB's option dump.
// Structural problems are refused by Store already; a value that breaks
// the type DuckDB detected from the head only shows in Extract.
func TestMalformedCSV(t *testing.T) {
	cases := []struct {
		name, content string
		atStore       bool
		want          []string
	}{
		{"too few fields", "a,b,c\n1,2,3\n4,5\n6,7,8\n", true, []string{"line 3: 2 fields, but the first line has 3"}},
		{"too many fields", "a,b,c\n1,2,3\n4,5,6\n4,5,6,7\n", true, []string{"line 4: 4 fields, but the first line has 3"}},
		{"too many fields far down", bigCSV(40000, 35000, "35000,1,2,3\n"), true, []string{"line 35002: 4 fields, but the first line has 3"}},
		{"unterminated quote", "a,b,c\n1,2,3\n4,\"5,6\n6,7,8\n", true, []string{"line 3: a quoted field starts here and is never closed"}},
		{"text after closing quote", "a,b\n1,\"x\"y\n", true, []string{`line 2: unexpected 'y' after the closing quote`}},
		{"invalid utf-8 in the head", "a,b,c\n1,2,3\n4,\xff\xfe,6\n6,7,8\n", true, []string{"line 3: invalid UTF-8"}},
		{"invalid utf-8 far down", bigCSV(40000, 39000, "39000,1,caf\xe9\n"), true, []string{"line 39002: invalid UTF-8"}},
		{"line too long", "a,b\n1,2\n3,\"" + strings.Repeat("x", 1_000_000) + "\n" + strings.Repeat("y", 1_000_000) + "\"\n", true,
			[]string{"line 3: the line is longer than 2000000 bytes"}},
		{"latin-1 file", "name\nJos\xe9\n", true, []string{"line 2: invalid UTF-8"}},
		{"type break after the sniffed rows", bigCSV(40000, 30000, "30000,abc,x\n"), false,
			[]string{`line 30002: column "amount": "abc" is not a BIGINT`}},
		{"type break after mixed line ends", strings.Replace(bigCSV(40000, 30000, "30000,abc,x\r\n"), "5,15,n5\n", "5,15,n5\r\n", 1), false,
			[]string{`line 30002: column "amount": "abc" is not a BIGINT`}},
		{"type break, crlf file with a lone cr", strings.ReplaceAll(strings.Replace(bigCSV(40000, 30000, "30000,abc,x\n"), "5,15,n5\n", "5,15,n5\r", 1), "\n", "\r\n"), false,
			[]string{`line 30002: column "amount": "abc" is not a BIGINT`}},
		{"date break after the sniffed rows", "d\n" + strings.Repeat("2024-01-02\n", 25000) + "2024-13-45\n", false,
			[]string{`line 25002: column "d": "2024-13-45" is not a DATE`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, _, _, err := upload.Store(context.Background(), dir, "t", strings.NewReader(tc.content), 0)
			if tc.atStore {
				checkInputError(t, "Store", err, tc.want)
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("Store left %v", entries)
				}
			} else if err != nil {
				t.Fatalf("Store: %v", err)
			}
			// Extract finds the same, whoever put the file there.
			if err := os.WriteFile(filepath.Join(dir, "t.csv"), []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			w := writer(t)
			_, err = upload.New(dir).Extract(context.Background(), connectors.TableSpec{ID: "t", SourceTable: "t.csv"}, w)
			checkInputError(t, "Extract", err, append([]string{"t.csv: "}, tc.want...))
			if strings.Contains(err.Error(), dir) || strings.Contains(err.Error(), "Possible") || strings.Contains(err.Error(), "delimiter =") {
				t.Errorf("Extract error leaks internals: %s", err)
			}
			if files, _ := os.ReadDir(filepath.Join(w.Dir(), "data")); len(files) != 0 {
				t.Errorf("a failed Extract left %v", files)
			}
		})
	}
}

func TestCorruptParquet(t *testing.T) {
	dir := t.TempDir()
	if _, _, _, err := upload.Store(context.Background(), dir, "p", strings.NewReader("PAR1"+strings.Repeat("garbage!", 100)+"PAR1"), 0); err != nil {
		t.Fatal(err) // the magic bytes are all Store looks at
	}
	_, err := upload.New(dir).Extract(context.Background(), connectors.TableSpec{ID: "p"}, writer(t))
	checkInputError(t, "Extract", err, []string{"p.parquet: not a readable Parquet file"})
	if strings.Contains(err.Error(), dir) {
		t.Errorf("error leaks the path: %s", err)
	}
}

func TestSniff(t *testing.T) {
	garbage := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(r.Uint32())
	}
	pq := parquetBytes(t, "SELECT 1 AS a")
	for name, tc := range map[string]struct {
		content string
		kind    upload.Kind
		err     string
	}{
		"csv":              {"a,b\n1,2\n", upload.KindCSV, ""},
		"parquet":          {string(pq), upload.KindParquet, ""},
		"empty":            {"", "", "the file is empty"},
		"white space":      {" \n\r\n\t", "", "only white space"},
		"binary garbage":   {string(garbage), "", "binary data"},
		"nul bytes":        {"a,b\n1,\x00\n", "", "binary data"},
		"utf-16":           {"\xff\xfea\x00,\x00b\x00", "", "UTF-16"},
		"truncated":        {string(pq[:len(pq)-10]), "", "does not end like one"},
		"tiny parquet":     {"PAR1PAR1", "", "too short"},
		"cut utf-8 at end": {"a\n\xc3", "", "line 2: invalid UTF-8"},
	} {
		kind, err := upload.Sniff(strings.NewReader(tc.content), int64(len(tc.content)))
		if tc.err == "" {
			if err != nil || kind != tc.kind {
				t.Errorf("%s: Sniff = %s, %v; want %s", name, kind, err, tc.kind)
			}
			continue
		}
		var ie *connectors.InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: Sniff = %s, %v; want an InputError with %q", name, kind, err, tc.err)
		}
	}
	// Only the head is read for CSV: a long file is not loaded whole.
	big := bytes.Repeat([]byte("a,b\n"), 1<<20)
	if kind, err := upload.Sniff(bytes.NewReader(big), int64(len(big))); err != nil || kind != upload.KindCSV {
		t.Errorf("big csv: %s %v", kind, err)
	}
}

func TestStore(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "uploads") // created by Store
	name, kind, size := store(t, dir, "sales", salesCSV)
	if name != "sales.csv" || kind != upload.KindCSV || size != int64(len(salesCSV)) {
		t.Fatalf("Store = %s %s %d", name, kind, size)
	}

	// Over the limit: a typed error, nothing left, the earlier upload kept.
	big := strings.NewReader("id\n" + strings.Repeat("1\n", 1000))
	_, _, _, err := upload.Store(ctx, dir, "sales", big, 100)
	var tl *upload.TooLargeError
	if !errors.As(err, &tl) || tl.Limit != 100 {
		t.Fatalf("over the limit: %v", err)
	}
	if big.Len() == 0 {
		t.Error("Store read the whole body past the limit")
	}
	assertFiles(t, dir, "sales.csv")
	if b, _ := os.ReadFile(filepath.Join(dir, "sales.csv")); string(b) != salesCSV {
		t.Error("the earlier upload changed")
	}
	// Exactly at the limit is fine.
	if _, _, _, err := upload.Store(ctx, dir, "small", strings.NewReader("a\n1\n"), 4); err != nil {
		t.Errorf("at the limit: %v", err)
	}

	// A malformed upload is refused and the earlier one stays.
	_, _, _, err = upload.Store(ctx, dir, "sales", strings.NewReader("a,b\n1\n"), 0)
	checkInputError(t, "Store", err, []string{"line 2"})
	assertFiles(t, dir, "sales.csv", "small.csv")

	// Ids must be registry ids; a cancelled context stops the copy.
	for _, id := range []string{"Sales", "a-b", "../x", "", "_meta"} {
		var ie *connectors.InputError
		if _, _, _, err := upload.Store(ctx, dir, id, strings.NewReader(salesCSV), 0); !errors.As(err, &ie) {
			t.Errorf("Store(%q) = %v, want an InputError", id, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, _, err := upload.Store(cctx, dir, "late", strings.NewReader(salesCSV), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Store: %v", err)
	}
	assertFiles(t, dir, "sales.csv", "small.csv")
}

func TestDiscover(t *testing.T) {
	dir := t.TempDir()
	store(t, dir, "sales", salesCSV)
	store(t, dir, "metrics", string(parquetBytes(t, "SELECT range AS id FROM range(7)")))
	for _, junk := range []string{".upload-x-123.tmp", "Bad-Name.csv", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, junk), []byte("a\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	found, err := upload.New(dir).Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 {
		t.Fatalf("discovered %+v", found)
	}
	m, s := found[0], found[1]
	if m.ID != "metrics" || m.SourceTable != "metrics.parquet" || m.Rows != 7 || !slices.Equal(m.Columns, []string{"id"}) {
		t.Errorf("metrics: %+v", m)
	}
	if s.ID != "sales" || s.SourceTable != "sales.csv" || s.SizeBytes != int64(len(salesCSV)) ||
		!slices.Equal(s.Columns, []string{"id", "name", "amount", "day", "paid"}) {
		t.Errorf("sales: %+v", s)
	}
	if found, err := upload.New(filepath.Join(dir, "none")).Discover(context.Background()); err != nil || len(found) != 0 {
		t.Errorf("missing dir: %v %v", found, err)
	}
}

func TestExtractNotFound(t *testing.T) {
	c := upload.New(t.TempDir())
	for _, src := range []string{"nope.csv", "nope", "../etc/passwd", "x.txt"} {
		_, err := c.Extract(context.Background(), connectors.TableSpec{ID: "t", SourceTable: src}, writer(t))
		if !errors.Is(err, connectors.ErrNotFound) {
			t.Errorf("SourceTable %q: %v, want ErrNotFound", src, err)
		}
	}
}

func store(t *testing.T, dir, id, content string) (string, upload.Kind, int64) {
	t.Helper()
	name, kind, size, err := upload.Store(context.Background(), dir, id, strings.NewReader(content), 1<<30)
	if err != nil {
		t.Fatalf("Store %s: %v", id, err)
	}
	return name, kind, size
}

func writer(t *testing.T) *extract.Writer {
	t.Helper()
	w, err := extract.NewWriter(filepath.Join(t.TempDir(), "upload"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// extractOne extracts spec from the uploads in dir, commits it and returns
// the extract attached as the default catalog.
func extractOne(t *testing.T, dir string, spec connectors.TableSpec) (*sql.DB, extract.Table) {
	t.Helper()
	ctx := context.Background()
	w := writer(t)
	tbl, err := upload.New(dir).Extract(ctx, spec, w)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(ctx, tbl); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	for _, q := range []string{"ATTACH '" + filepath.Join(w.Dir(), extract.DBFile) + "' AS x (READ_ONLY)", "USE x"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return db, tbl
}

func describe(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	rows, err := db.Query(`SELECT column_name || ' ' || column_type FROM (DESCRIBE "` + table + `")`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	return strings.Join(cols, ", ")
}

func parquetBytes(t *testing.T, query string) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.parquet")
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("COPY (" + query + ") TO '" + p + "' (FORMAT parquet)"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkInputError(t *testing.T, what string, err error, want []string) {
	t.Helper()
	var ie *connectors.InputError
	if !errors.As(err, &ie) {
		t.Fatalf("%s: %v, want an InputError", what, err)
	}
	for _, w := range want {
		if !strings.Contains(ie.Msg, w) {
			t.Errorf("%s: %q does not contain %q", what, ie.Msg, w)
		}
	}
}

func assertFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Errorf("files in %s = %v, want %v", dir, got, want)
	}
}
