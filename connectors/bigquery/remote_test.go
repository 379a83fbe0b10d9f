package bigquery_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/bigquery"
)

func TestRemoteDryRun(t *testing.T) {
	fake := newFake(t)
	r := open(t, fake, nil).Remote(4000)
	n, err := r.DryRun(ctxT(t), "SELECT name FROM `test-proj.hr.people`")
	if err != nil || n != 300 { // 3 rows × 100 bytes, the fake's default estimate
		t.Errorf("DryRun = %d, %v; want 300", n, err)
	}
	n, err = r.DryRun(ctxT(t), "SELECT * FROM `test-proj.sales.orders`")
	var over *bigquery.OverCapError
	if !errors.As(err, &over) || n != 5000 || over.Estimate != 5000 || over.Cap != 4000 {
		t.Errorf("DryRun over the cap = %d, %v", n, err)
	}
	_, err = r.DryRun(ctxT(t), "SELECT nope FROM `test-proj.sales.orders`")
	var input *connectors.InputError
	if !errors.As(err, &input) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("invalid query: %v", err)
	}
}

func TestRemoteQueryArrow(t *testing.T) {
	fake := newFake(t)
	fake.SetPageRows(2)
	r := open(t, fake, nil).Remote(0)
	r.BatchRows = 2
	rows, err := r.Query(ctxT(t), "SELECT id, customer, amount, ts, day, tags, addr FROM `test-proj.sales.orders` ORDER BY id", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Release()
	wantTypes := []string{"int64", "utf8", "decimal(38, 9)", "timestamp[us, tz=UTC]", "date32", "list<item: utf8>",
		"struct<city: utf8, zip: int64>"}
	for i, f := range rows.Schema().Fields() {
		if f.Type.String() != wantTypes[i] {
			t.Errorf("column %s: Arrow type %s, want %s", f.Name, f.Type, wantTypes[i])
		}
	}
	if cols := rows.Columns(); cols[3].Type != "TIMESTAMPTZ" || cols[6].Type != "STRUCT(city VARCHAR, zip BIGINT)" {
		t.Errorf("columns %v", cols)
	}
	var sizes []int64
	var ids []int64
	var first arrow.RecordBatch
	for rows.Next() {
		rec := rows.RecordBatch()
		sizes = append(sizes, rec.NumRows())
		ids = append(ids, rec.Column(0).(*array.Int64).Int64Values()...)
		if first == nil {
			first = rec
			first.Retain()
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	defer first.Release()
	if !slices.Equal(sizes, []int64{2, 2, 1}) || !slices.Equal(ids, []int64{2, 3, 4, 5, bigID}) {
		t.Errorf("batches %v ids %v", sizes, ids)
	}
	if rows.Truncated() || rows.TotalRows() != 5 {
		t.Errorf("Truncated %v TotalRows %d", rows.Truncated(), rows.TotalRows())
	}
	// bob (id 2) has no addr and no tags: NULL struct, empty list
	if !first.Column(6).IsNull(0) || func() bool { s, e := first.Column(5).(*array.List).ValueOffsets(0); return s != e }() {
		t.Error("row 2: want a NULL struct and an empty list")
	}
	ts := first.Column(3).(*array.Timestamp).Value(0)
	if want := time.Date(2024, 1, 31, 13, 34, 56, 123456000, time.UTC); ts.ToTime(arrow.Microsecond) != want {
		t.Errorf("ts %v, want %v", ts.ToTime(arrow.Microsecond), want)
	}
}

func TestRemoteQueryMaxRows(t *testing.T) {
	fake := newFake(t)
	rows, err := open(t, fake, nil).Remote(0).Query(ctxT(t), "SELECT name FROM `test-proj.hr.people` ORDER BY name", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Release()
	var names []string
	for rows.Next() {
		col := rows.RecordBatch().Column(0).(*array.String)
		for i := range col.Len() {
			names = append(names, col.Value(i))
		}
	}
	if !slices.Equal(names, []string{"ann", "bob"}) || !rows.Truncated() {
		t.Errorf("names %v truncated %v; want 2 rows and truncated", names, rows.Truncated())
	}
}

func TestRemoteQueryCapEnforcedByBigQuery(t *testing.T) {
	fake := newFake(t)
	fake.SetBytesEstimate(func(string) int64 { return 64 << 20 })
	_, err := open(t, fake, nil).Remote(32<<20).Query(ctxT(t), "SELECT 1", 0)
	var over *bigquery.OverCapError
	if !errors.As(err, &over) || over.Cap != 32<<20 || over.Estimate != 64<<20 {
		t.Errorf("error %v, want an OverCapError from maximumBytesBilled", err)
	}
}

func TestTranslate(t *testing.T) {
	db := duck(t)
	tables := map[string]string{"orders": "test-proj.sales.orders", "people": "test-proj.hr.people"}
	got, err := bigquery.Translate(ctxT(t), db, `SELECT o.customer AS "Who", count(*) AS n -- orders per "customer"
		FROM orders o JOIN people ON people.name = o.customer
		WHERE o.customer <> 'it''s \ here' AND paid
		GROUP BY 1 ORDER BY n DESC, 1 NULLS LAST`, tables)
	if err != nil {
		t.Fatal(err)
	}
	want := "SELECT o.customer AS `Who`, count(*) AS n -- orders per \"customer\"\n" +
		"\t\tFROM `test-proj.sales.orders` o JOIN `test-proj.hr.people` AS `people` ON people.name = o.customer\n" +
		"\t\tWHERE o.customer <> 'it\\'s \\\\ here' AND paid\n" +
		"\t\tGROUP BY 1 ORDER BY n DESC, 1 NULLS LAST"
	if got != want {
		t.Errorf("Translate:\n%s\nwant\n%s", got, want)
	}

	// The translation runs on (the fake) BigQuery with the expected result.
	fake := newFake(t)
	rows, err := open(t, fake, nil).Remote(0).Query(ctxT(t), got, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Release()
	if !rows.Next() || rows.RecordBatch().NumRows() != 1 || rows.Schema().Field(0).Name != "Who" {
		t.Errorf("translated query result: %v %v", rows.Err(), rows.Schema())
	}

	got, err = bigquery.Translate(ctxT(t), db, `WITH paid AS (SELECT * FROM main.orders WHERE paid) SELECT count(*) FROM paid`,
		map[string]string{"main.orders": "p-roj.s.o"})
	if err != nil || got != "WITH paid AS (SELECT * FROM `p-roj.s.o` AS `orders` WHERE paid) SELECT count(*) FROM paid" {
		t.Errorf("CTE: %q, %v", got, err)
	}
}

func TestTranslateRefuses(t *testing.T) {
	db := duck(t)
	tables := map[string]string{"orders": "test-proj.sales.orders", "people": "test-proj.hr.people"}
	for _, tc := range []struct{ sql, want string }{
		{"SELECT * FROM orders ORDER BY id", "ORDER BY without NULLS FIRST/LAST"},
		{"SELECT row_number() OVER (ORDER BY id) FROM orders", "window ORDER BY without NULLS FIRST/LAST"},
		{"SELECT date_trunc('month', day) FROM orders", "function date_trunc"},
		{"SELECT tags[1] FROM orders", "operator ARRAY_EXTRACT"},
		{"SELECT CAST(ratio AS INTEGER) FROM orders", "CAST to INTEGER"},
		{"SELECT TRY_CAST(ratio AS DATE) FROM orders", "TRY_CAST"},
		{"SELECT * EXCLUDE (id) FROM orders", "EXCLUDE"},
		{"SELECT * FROM orders NATURAL JOIN people", "NATURAL JOIN"},
		{"SELECT * FROM orders, local_table", "table local_table: not a remote BigQuery table"},
		{"SELECT * FROM read_parquet('x.parquet')", "table function"},
		{"SELECT DISTINCT ON (customer) * FROM orders", "DISTINCT ON"},
		{"SELECT count(*) FILTER (WHERE paid) FROM orders", "FILTER"},
		{"SELECT string_agg(customer, ',' ORDER BY customer) FROM orders", "function string_agg"},
		{"SELECT * FROM orders UNION BY NAME SELECT * FROM orders", "UNION BY NAME"},
		{"WITH orders AS (SELECT 1) SELECT * FROM orders", "WITH orders"},
		{"SELECT $$x$$", "$ in the query"},
		{"SELECT 1; SELECT 2", "2 statements"},
		{"DROP TABLE orders", "does not parse as one SELECT"},
	} {
		_, err := bigquery.Translate(ctxT(t), db, tc.sql, tables)
		var input *connectors.InputError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &input) {
			t.Errorf("Translate(%s): %v, want an input error containing %q", tc.sql, err, tc.want)
		}
	}
}

// BenchmarkRemoteOverhead compares Remote.Query of a small result with the
// fake's own answer to the same jobs.query over plain HTTP; the
// overhead-ms/op metric is the difference of the medians (target ≤ 5 ms).
func BenchmarkRemoteOverhead(b *testing.B) {
	fake := newFake(b)
	r := open(b, fake, nil).Remote(0)
	const query = "SELECT name, team FROM `test-proj.hr.people`"
	ctx := context.Background()
	body := []byte(`{"query":"` + strings.ReplaceAll(query, "`", "\\u0060") + `","useLegacySql":false,"formatOptions":{"useInt64Timestamp":true}}`)
	raw := func() {
		resp, err := http.Post(fake.URL()+"/projects/test-proj/queries", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("fake answered %d", resp.StatusCode)
		}
	}
	remote := func() {
		rows, err := r.Query(ctx, query, 0)
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		rows.Release()
	}
	raw()
	remote() // warm up: client creation, connections
	var rawTimes, remoteTimes []time.Duration
	for b.Loop() {
		start := time.Now()
		raw()
		rawTimes = append(rawTimes, time.Since(start))
		start = time.Now()
		remote()
		remoteTimes = append(remoteTimes, time.Since(start))
	}
	median := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2]) / float64(time.Millisecond)
	}
	b.ReportMetric(median(rawTimes), "fake-p50-ms")
	b.ReportMetric(median(remoteTimes), "remote-p50-ms")
	b.ReportMetric(median(remoteTimes)-median(rawTimes), "overhead-ms/op")
}
