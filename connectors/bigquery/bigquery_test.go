package bigquery_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/bigquery"
	"github.com/agnesdata/agnes/connectors/bigquery/bqfake"
	"github.com/agnesdata/agnes/connectors/connectortest"
	"github.com/agnesdata/agnes/connectors/extract"
)

const project = "test-proj"

// bigID is over 2^53: it survives only if int64s travel as strings.
const bigID = 9007199254740993

// newFake returns a fake with dataset sales (orders: every type, nested
// and repeated fields, NULLs; v_paid: a view) and dataset hr (people).
func newFake(t testing.TB) *bqfake.Server {
	t.Helper()
	fake, err := bqfake.New(project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	must(t, fake.AddDataset("sales", "EU"))
	must(t, fake.AddDataset("hr", "EU"))
	ts := time.Date(2024, 1, 31, 12, 34, 56, 123456000, time.UTC)
	must(t, fake.AddTable("sales", bqfake.Table{
		ID: "orders", Description: "Orders", NumBytes: 5000,
		Schema: []bqfake.Field{
			{Name: "id", Type: "INTEGER", Mode: "REQUIRED"},
			{Name: "customer", Type: "STRING"},
			{Name: "amount", Type: "NUMERIC"},
			// a query result does not carry NUMERIC(10, 2)'s parameters: DECIMAL(38,9)
			{Name: "price", Type: "NUMERIC", Precision: 10, Scale: 2},
			{Name: "big", Type: "BIGNUMERIC"},
			{Name: "ratio", Type: "FLOAT"},
			{Name: "paid", Type: "BOOLEAN"},
			{Name: "ts", Type: "TIMESTAMP"},
			{Name: "day", Type: "DATE"},
			{Name: "dt", Type: "DATETIME"},
			{Name: "tm", Type: "TIME"},
			{Name: "raw", Type: "BYTES"},
			{Name: "geo", Type: "GEOGRAPHY"},
			{Name: "doc", Type: "JSON"},
			{Name: "dur", Type: "INTERVAL"},
			{Name: "tags", Type: "STRING", Mode: "REPEATED"},
			{Name: "addr", Type: "RECORD", Fields: []bqfake.Field{{Name: "city", Type: "STRING"}, {Name: "zip", Type: "INTEGER"}}},
			{Name: "items", Type: "RECORD", Mode: "REPEATED", Fields: []bqfake.Field{{Name: "sku", Type: "STRING"}, {Name: "qty", Type: "INTEGER"}}},
			{Name: "odd", Type: "RECORD", Fields: []bqfake.Field{{Name: "end", Type: "STRING"}}},
		},
		Rows: [][]any{
			{bigID, "ann", "10.5", "12.34", "123456789012345678901234567890.12345678901234567890123456789012345678", 0.5, true, ts,
				"2024-01-31", "2024-01-31 08:00:00.25", "12:34:56.5", "hi", "POINT(1 2)", map[string]any{"a": 1}, "1 day 02:00:00",
				[]any{"a", "b"}, map[string]any{"city": "Praha", "zip": 11000},
				[]any{map[string]any{"sku": "x", "qty": 2}}, map[string]any{"end": "e"}},
			{2, "bob", "-3.25", nil, nil, nil, false, ts.Add(time.Hour), "2024-02-01", nil, nil, nil, nil, nil, nil,
				[]any{}, nil, []any{}, nil},
			{3, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
			{4, "dan", "1", nil, nil, -1.25, true, nil, nil, nil, nil, nil, nil, nil, nil, []any{"c"}, nil, nil, nil},
			{5, "eve", "2", nil, nil, 2, true, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
		},
	}))
	must(t, fake.AddTable("sales", bqfake.Table{ID: "v_paid", Type: "VIEW",
		View: "SELECT id, customer FROM `test-proj.sales.orders` WHERE paid"}))
	must(t, fake.AddTable("hr", bqfake.Table{
		ID: "people", Description: "Staff",
		Schema: []bqfake.Field{{Name: "name", Type: "STRING"}, {Name: "team", Type: "STRING"}},
		Rows:   [][]any{{"ann", "data"}, {"bob", "ops"}, {"cid", "data"}},
	}))
	return fake
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func open(t testing.TB, fake *bqfake.Server, extra map[string]any) *bigquery.Connector {
	t.Helper()
	raw := map[string]any{"project": project, "endpoint": fake.URL()}
	for k, v := range extra {
		raw[k] = v
	}
	c, err := bigquery.New("bigquery", raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // 5xx would be retried until ctx ends
	t.Cleanup(cancel)
	return ctx
}

func writer(t *testing.T) *extract.Writer {
	t.Helper()
	w, err := extract.NewWriter(filepath.Join(t.TempDir(), "bigquery"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func duck(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	fake := newFake(t)
	fake.SetPageRows(2)
	connectortest.Run(t, func(t *testing.T) connectors.Connector { return open(t, fake, nil) },
		connectortest.Case{Name: "materialized query", Spec: connectors.TableSpec{
			ID: "teams", Name: "teams", Strategy: connectors.StrategyFullRefresh,
			SourceQuery: "SELECT team, count(*) AS n FROM `test-proj.hr.people` GROUP BY team",
		}, Check: func(t *testing.T, db *sql.DB, _ extract.Table) {
			var n int64
			if err := db.QueryRow("SELECT n FROM teams WHERE team = 'data'").Scan(&n); err != nil || n != 2 {
				t.Errorf("teams: data has %d (%v), want 2", n, err)
			}
		}},
	)
}

func TestDiscover(t *testing.T) {
	fake := newFake(t)
	got, err := open(t, fake, nil).Discover(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, d := range got {
		lines = append(lines, d.ID+" "+d.Bucket+"."+d.SourceTable+" "+strings.Join(d.Columns[:2], ","))
	}
	want := "orders sales.orders id,customer|v_paid sales.v_paid id,customer|people hr.people name,team"
	if strings.Join(lines, "|") != want {
		t.Errorf("Discover:\n%s\nwant\n%s", strings.Join(lines, "|"), want)
	}
	if got[0].Rows != 5 || got[0].SizeBytes != 5000 || got[0].Description != "Orders" {
		t.Errorf("orders: %+v", got[0])
	}
}

// TestMaterializeTypes reads back the Parquet of orders, written from
// three pages of results.
func TestMaterializeTypes(t *testing.T) {
	fake := newFake(t)
	fake.SetPageRows(2)
	c := open(t, fake, nil)
	w := writer(t)
	tbl, err := c.Extract(ctxT(t), connectors.TableSpec{ID: "orders", Bucket: "sales", SourceTable: "orders"}, w)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Rows != 5 || tbl.QueryMode != extract.ModeLocal || tbl.MD5 == "" {
		t.Errorf("table %+v", tbl.Meta)
	}
	pages := 0
	for _, r := range fake.Requests() {
		if r.Method == "GET" && strings.Contains(r.Path, "/queries/") && r.Query["pageToken"] != nil {
			pages++
		}
	}
	if pages != 2 {
		t.Errorf("%d page fetches after the first page, want 2 (5 rows, 2 per page)", pages)
	}
	db := duck(t)
	file := filepath.Join(w.Dir(), "data", "orders.parquet")
	types := map[string]string{}
	rows, err := db.Query("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?))", file)
	must(t, err)
	for rows.Next() {
		var n, ty string
		must(t, rows.Scan(&n, &ty))
		types[n] = ty
	}
	rows.Close()
	want := map[string]string{
		"id": "BIGINT", "customer": "VARCHAR", "amount": "DECIMAL(38,9)", "price": "DECIMAL(38,9)", "big": "VARCHAR",
		"ratio": "DOUBLE", "paid": "BOOLEAN", "ts": "TIMESTAMP WITH TIME ZONE", "day": "DATE", "dt": "TIMESTAMP",
		"tm": "TIME", "raw": "BLOB", "geo": "VARCHAR", "doc": "JSON", "dur": "VARCHAR", "tags": "VARCHAR[]",
		"addr": "STRUCT(city VARCHAR, zip BIGINT)", "items": "STRUCT(sku VARCHAR, qty BIGINT)[]", "odd": "JSON",
	}
	for k, v := range want {
		if types[k] != v {
			t.Errorf("column %s: Parquet type %q, want %q", k, types[k], v)
		}
	}
	var (
		id                                         int64
		amount, price, big, ts, day, dt, tm, raw   string
		geo, doc, dur, tags, addr, items, odd, cus string
	)
	err = db.QueryRow(`SELECT id, customer, amount::VARCHAR, price::VARCHAR, big, strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S.%f'),
		day::VARCHAR, dt::VARCHAR, tm::VARCHAR, raw::VARCHAR, geo, doc::VARCHAR, dur, tags::VARCHAR, addr::VARCHAR,
		items::VARCHAR, odd::VARCHAR FROM read_parquet(?) WHERE id = ?`, file, bigID).
		Scan(&id, &cus, &amount, &price, &big, &ts, &day, &dt, &tm, &raw, &geo, &doc, &dur, &tags, &addr, &items, &odd)
	must(t, err)
	got := []string{cus, amount, price, big, ts, day, dt, tm, raw, geo, doc, dur, tags, addr, items, odd}
	wantVals := []string{"ann", "10.500000000", "12.340000000", "123456789012345678901234567890.12345678901234567890123456789012345678",
		"2024-01-31 12:34:56.123456", "2024-01-31", "2024-01-31 08:00:00.25", "12:34:56.5", "hi", "POINT(1 2)", `{"a":1}`,
		"0-0 1 2:0:0", "[a, b]", "{'city': Praha, 'zip': 11000}", "[{'sku': x, 'qty': 2}]", `{"end":"e"}`}
	for i := range wantVals {
		if got[i] != wantVals[i] {
			t.Errorf("value %d: %q, want %q", i, got[i], wantVals[i])
		}
	}
	var nulls, emptyTags int
	must(t, db.QueryRow(`SELECT count(*) FILTER (customer IS NULL AND amount IS NULL AND ts IS NULL AND addr IS NULL),
		count(*) FILTER (len(tags) = 0) FROM read_parquet(?)`, file).Scan(&nulls, &emptyTags))
	if nulls != 1 || emptyTags != 3 {
		t.Errorf("NULL rows %d (want 1), empty arrays %d (want 3: NULL arrays read as empty)", nulls, emptyTags)
	}
}

func TestMaterializeQuerySendsCapAndGoogleSQL(t *testing.T) {
	fake := newFake(t)
	c := open(t, fake, map[string]any{"max_bytes_per_materialize": 50 << 20, "location": "EU"})
	_, err := c.Extract(ctxT(t), connectors.TableSpec{ID: "data_people", SourceQuery: "SELECT name FROM `test-proj.hr.people` WHERE team = 'data'"}, writer(t))
	must(t, err)
	var dryRuns, queries int
	for _, r := range fake.Requests() {
		var body map[string]any
		_ = json.Unmarshal(r.Body, &body)
		if r.Header.Get("Authorization") != "" {
			t.Errorf("%s %s sent credentials to an endpoint override", r.Method, r.Path)
		}
		switch {
		case r.Method == "POST" && strings.HasSuffix(r.Path, "/jobs"):
			cfg := body["configuration"].(map[string]any)
			if cfg["dryRun"] != true || cfg["query"].(map[string]any)["useQueryCache"] != false {
				t.Errorf("dry run body %s", r.Body)
			}
			dryRuns++
		case r.Method == "POST" && strings.HasSuffix(r.Path, "/queries"):
			if body["maximumBytesBilled"] != "52428800" || body["useLegacySql"] != false || body["location"] != "EU" {
				t.Errorf("jobs.query body %s", r.Body)
			}
			queries++
		}
	}
	if dryRuns != 1 || queries != 1 {
		t.Errorf("%d dry runs and %d queries, want 1 each (dry run first)", dryRuns, queries)
	}
}

func TestMaterializeOverCap(t *testing.T) {
	fake := newFake(t)
	fake.SetBytesEstimate(func(string) int64 { return 3 << 30 })
	c := open(t, fake, map[string]any{"max_bytes_per_materialize": 1 << 30})
	w := writer(t)
	_, err := c.Extract(ctxT(t), connectors.TableSpec{ID: "orders", Bucket: "sales", SourceTable: "orders"}, w)
	var over *bigquery.OverCapError
	if !errors.As(err, &over) || over.Estimate != 3<<30 || over.Cap != 1<<30 {
		t.Fatalf("error %v, want an OverCapError with estimate 3 GiB and cap 1 GiB", err)
	}
	for _, part := range []string{"3.0 GiB", "3221225472 bytes", "1.0 GiB", "1073741824 bytes", "orders"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("message %q lacks %q", err, part)
		}
	}
	for _, r := range fake.Requests() {
		if strings.HasSuffix(r.Path, "/queries") {
			t.Error("the query ran although the dry run was over the cap")
		}
	}
	if _, err := filepath.Glob(filepath.Join(w.Dir(), "data", "*")); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(w.Dir(), "data", "*")); len(files) != 0 {
		t.Errorf("files written: %v", files)
	}

	// 0 disables the cap: no dry run at all.
	fake.ResetRequests()
	c = open(t, fake, map[string]any{"max_bytes_per_materialize": 0})
	if _, err := c.Extract(ctxT(t), connectors.TableSpec{ID: "orders", Bucket: "sales", SourceTable: "orders"}, w); err != nil {
		t.Fatal(err)
	}
	for _, r := range fake.Requests() {
		if strings.HasSuffix(r.Path, "/jobs") {
			t.Error("a dry run although the cap is disabled")
		}
	}
}

func TestErrors(t *testing.T) {
	fake := newFake(t)
	c := open(t, fake, nil)
	w := writer(t)
	_, err := c.Extract(ctxT(t), connectors.TableSpec{ID: "nope", Bucket: "sales", SourceTable: "nope"}, w)
	if !errors.Is(err, connectors.ErrNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing table: %v", err)
	}

	_, err = c.Extract(ctxT(t), connectors.TableSpec{ID: "bad", SourceQuery: "SELEC 1"}, w)
	var input *connectors.InputError
	var bqErr *bigquery.Error
	if !errors.As(err, &input) || !errors.As(err, &bqErr) || bqErr.Code != 400 || bqErr.Reason != "invalidQuery" {
		t.Errorf("invalid query: %v, want an InputError and a bigquery.Error 400 invalidQuery", err)
	}

	fake.Fail(bqfake.Fault{Path: "/queries", Code: 403, Reason: "accessDenied",
		Message: "Access Denied: User does not have bigquery.jobs.create permission in project test-proj."})
	_, err = c.Extract(ctxT(t), connectors.TableSpec{ID: "people", Bucket: "hr", SourceTable: "people"}, w)
	if !errors.As(err, &bqErr) || bqErr.Code != 403 || bqErr.Reason != "accessDenied" ||
		!strings.Contains(err.Error(), "bigquery.jobs.create permission") {
		t.Errorf("access denied: %v", err)
	}
	if errors.Is(err, connectors.ErrNotFound) || errors.As(err, &input) {
		t.Errorf("a 403 is neither not-found nor an input error: %v", err)
	}

	fake.Fail(bqfake.Fault{Path: "/datasets", Code: 403, Reason: "accessDenied", Message: "Access Denied: Project test-proj"})
	if _, err := c.Discover(ctxT(t)); !errors.As(err, &bqErr) || bqErr.Op != "list datasets" {
		t.Errorf("discover: %v", err)
	}
}

func TestSettings(t *testing.T) {
	env := map[string]string{"BIGQUERY_PROJECT": "my-project", "AGNES_BIGQUERY_ENDPOINT": "http://127.0.0.1:9050/bigquery/v2",
		"BIGQUERY_LOCATION": "EU"}
	raw := bigquery.EnvSettings(func(k string) string { return env[k] })
	c, err := bigquery.New("bq", raw)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Settings()
	if s.Project != "my-project" || s.BillingProject != "my-project" || s.Location != "EU" ||
		s.Endpoint != "http://127.0.0.1:9050/bigquery/v2/" || s.MaxBytesPerMaterialize != 10<<30 {
		t.Errorf("settings %+v", s)
	}
	if raw := bigquery.EnvSettings(func(string) string { return "" }); raw != nil {
		t.Errorf("no BIGQUERY_PROJECT: %v, want nil", raw)
	}
	for _, tc := range []struct {
		raw  map[string]any
		want string
	}{
		{map[string]any{}, "project is not set"},
		{map[string]any{"project": "X"}, `project "X" is not a Google Cloud project id`},
		{map[string]any{"project": "my-project", "max_bytes_per_materialize": -1}, "max_bytes_per_materialize -1 is negative"},
		{map[string]any{"project": "my-project", "endpoint": "localhost:9050"}, "is not an http(s) URL"},
		{map[string]any{"project": "my-project", "projct": "x"}, "projct"},
	} {
		if _, err := bigquery.Open("bq", tc.raw); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%v): %v, want an error containing %q", tc.raw, err, tc.want)
		}
	}
}
