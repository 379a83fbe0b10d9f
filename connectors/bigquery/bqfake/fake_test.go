package bqfake_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/agnesdata/agnes/connectors/bigquery/bqfake"
)

const project = "test-proj"

// start returns a fake with dataset sales holding orders (3 rows, every
// scalar type, a RECORD and a REPEATED field) and a client for it.
func start(t *testing.T) (*bqfake.Server, *bigquery.Client) {
	t.Helper()
	fake, err := bqfake.New(project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	if err := fake.AddDataset("sales", "EU"); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2024, 1, 31, 12, 34, 56, 123456000, time.UTC)
	err = fake.AddTable("sales", bqfake.Table{
		ID: "orders", Description: "all orders", PartitionField: "ts", Clustering: []string{"customer"},
		Schema: []bqfake.Field{
			{Name: "id", Type: "INTEGER", Mode: "REQUIRED"},
			{Name: "customer", Type: "STRING"},
			{Name: "amount", Type: "NUMERIC"},
			{Name: "ratio", Type: "FLOAT"},
			{Name: "paid", Type: "BOOLEAN"},
			{Name: "ts", Type: "TIMESTAMP"},
			{Name: "day", Type: "DATE"},
			{Name: "tags", Type: "STRING", Mode: "REPEATED"},
			{Name: "addr", Type: "RECORD", Fields: []bqfake.Field{{Name: "city", Type: "STRING"}, {Name: "zip", Type: "INTEGER"}}},
		},
		Rows: [][]any{
			{1, "ann", "10.50", 0.5, true, ts, "2024-01-31", []any{"a", "b"}, map[string]any{"city": "Prague", "zip": 11000}},
			{2, "bob", "-3.25", math.Inf(1), false, ts.Add(time.Hour), "2024-02-01", []any{}, nil},
			{3, nil, nil, nil, nil, nil, nil, nil, map[string]any{"city": nil, "zip": nil}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, err := fake.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return fake, c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second) // 5xx would be retried until ctx ends
	t.Cleanup(cancel)
	return c
}

func readAll(t *testing.T, it *bigquery.RowIterator) [][]bigquery.Value {
	t.Helper()
	var out [][]bigquery.Value
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, row)
	}
}

func TestQueryPagesAndTypes(t *testing.T) {
	fake, c := start(t)
	fake.SetPageRows(2)
	it, err := c.Query("SELECT * FROM `test-proj.sales.orders` ORDER BY id").Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	rows := readAll(t, it)
	if len(rows) != 3 || it.TotalRows != 3 {
		t.Fatalf("got %d rows, TotalRows %d", len(rows), it.TotalRows)
	}
	r := rows[0]
	if r[0] != int64(1) || r[1] != "ann" || r[2].(*big.Rat).FloatString(2) != "10.50" || r[3] != 0.5 || r[4] != true {
		t.Errorf("row 1 scalars: %v", r)
	}
	if got := r[5].(time.Time); !got.Equal(time.Date(2024, 1, 31, 12, 34, 56, 123456000, time.UTC)) {
		t.Errorf("ts = %v", got)
	}
	if r[6] != (civil.Date{Year: 2024, Month: 1, Day: 31}) {
		t.Errorf("day = %v", r[6])
	}
	if tags := r[7].([]bigquery.Value); len(tags) != 2 || tags[1] != "b" {
		t.Errorf("tags = %v", r[7])
	}
	if addr := r[8].([]bigquery.Value); addr[0] != "Prague" || addr[1] != int64(11000) {
		t.Errorf("addr = %v", r[8])
	}
	if !math.IsInf(rows[1][3].(float64), 1) || rows[1][8] != nil {
		t.Errorf("row 2: %v", rows[1])
	}
	if rows[2][1] != nil || len(rows[2][7].([]bigquery.Value)) != 0 {
		t.Errorf("row 3 NULLs: %v", rows[2])
	}
	if it.Schema[0].Type != bigquery.IntegerFieldType || !it.Schema[7].Repeated || it.Schema[8].Type != bigquery.RecordFieldType {
		t.Errorf("schema: %+v", it.Schema)
	}

	var sawPage2 bool
	for _, r := range fake.Requests() {
		if r.Method == "GET" && strings.Contains(r.Path, "/queries/") && r.Query["pageToken"] != nil {
			sawPage2 = true
		}
		if r.Method == "POST" && strings.HasSuffix(r.Path, "/queries") {
			var body map[string]any
			if err := r.JSON(&body); err != nil || body["useLegacySql"] != false {
				t.Errorf("jobs.query body %s", r.Body)
			}
		}
	}
	if !sawPage2 {
		t.Error("the client never asked for page 2")
	}
}

func TestWireTraps(t *testing.T) {
	fake, c := start(t)
	if _, err := c.Dataset("sales").Table("orders").Metadata(ctx(t)); err != nil {
		t.Fatal(err)
	}
	fake.SetPageRows(1)
	it, err := c.Query("SELECT id FROM sales.orders").Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, it) // page 2 and 3 through getQueryResults
	var table, page map[string]json.RawMessage
	// Decode the raw answers with a plain HTTP GET so the test sees the wire.
	get := func(path string, v any) {
		t.Helper()
		resp, err := httpGet(fake.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(resp, v); err != nil {
			t.Fatalf("%s: %v", resp, err)
		}
	}
	get("/bigquery/v2/projects/test-proj/datasets/sales/tables/orders", &table)
	if string(table["numRows"]) != `"3"` || !strings.Contains(string(table["schema"]), `"type":"INTEGER"`) ||
		!strings.Contains(string(table["schema"]), `"type":"RECORD"`) {
		t.Errorf("tables.get: numRows %s schema %s", table["numRows"], table["schema"])
	}
	var jobID string
	for _, r := range fake.Requests() {
		if r.Method == "GET" && strings.Contains(r.Path, "/queries/") {
			jobID = r.Path[strings.LastIndex(r.Path, "/")+1:]
		}
	}
	get("/projects/test-proj/queries/"+jobID+"?maxResults=5", &page)
	if string(page["totalRows"]) != `"3"` || !strings.Contains(string(page["rows"]), `{"v":"1"}`) {
		t.Errorf("getQueryResults: %v", page)
	}
	if _, ok := page["pageToken"]; ok {
		t.Error("pageToken on the last page")
	}
}

func TestPendingQueryIsPolled(t *testing.T) {
	fake, c := start(t)
	fake.SetPendingPolls(2)
	it, err := c.Query("SELECT count(*) AS n FROM sales.orders").Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	rows := readAll(t, it)
	if len(rows) != 1 || rows[0][0] != int64(3) {
		t.Fatalf("rows %v", rows)
	}
	polls := 0
	for _, r := range fake.Requests() {
		if r.Method == "GET" && strings.Contains(r.Path, "/queries/") {
			polls++
		}
	}
	if polls < 2 {
		t.Errorf("%d getQueryResults calls, want the client to poll", polls)
	}
}

func TestDryRun(t *testing.T) {
	fake, c := start(t)
	fake.SetBytesEstimate(func(q string) int64 { return 12345 })
	q := c.Query("SELECT id FROM `test-proj.sales.orders` WHERE customer = ?")
	q.Parameters = []bigquery.QueryParameter{{Value: "ann"}}
	q.DryRun = true
	job, err := q.Run(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := job.LastStatus().Statistics.TotalBytesProcessed; got != 12345 {
		t.Errorf("TotalBytesProcessed = %d", got)
	}
	q = c.Query("SELECT nope FROM sales.orders")
	q.DryRun = true
	_, err = q.Run(ctx(t))
	requireReason(t, err, 400, "invalidQuery")
}

func TestErrors(t *testing.T) {
	fake, c := start(t)
	_, err := c.Query("SELECT * FROM sales.missing").Read(ctx(t))
	requireReason(t, err, 404, "notFound")
	_, err = c.Query("SELEC 1").Read(ctx(t))
	requireReason(t, err, 400, "invalidQuery")
	_, err = c.Dataset("sales").Table("missing").Metadata(ctx(t))
	requireReason(t, err, 404, "notFound")
	fake.Fail(bqfake.Fault{Path: "/queries", Code: 403, Reason: "accessDenied", Message: "Access Denied: Project test-proj"})
	_, err = c.Query("SELECT 1").Read(ctx(t))
	requireReason(t, err, 403, "accessDenied")
	if _, err := c.Query("SELECT 1").Read(ctx(t)); err != nil {
		t.Errorf("the fault should answer once: %v", err)
	}
	q := c.Query("SELECT * FROM sales.orders")
	q.MaxBytesBilled = 10
	_, err = q.Read(ctx(t))
	requireReason(t, err, 400, "bytesBilledLimitExceeded")
}

func TestListingAndMetadataQueries(t *testing.T) {
	fake, c := start(t)
	if err := fake.AddDataset("empty", ""); err != nil {
		t.Fatal(err)
	}
	if err := fake.AddTable("sales", bqfake.Table{ID: "v_orders", Type: "VIEW", View: "SELECT id, customer FROM `test-proj.sales.orders` WHERE paid"}); err != nil {
		t.Fatal(err)
	}
	var ds []string
	dit := c.Datasets(ctx(t))
	for {
		d, err := dit.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d.DatasetID)
	}
	if strings.Join(ds, ",") != "sales,empty" {
		t.Errorf("datasets %v", ds)
	}
	tit := c.Dataset("sales").Tables(ctx(t))
	var tables []string
	for {
		tb, err := tit.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tables = append(tables, tb.TableID)
	}
	if strings.Join(tables, ",") != "orders,v_orders" {
		t.Errorf("tables %v", tables)
	}
	md, err := c.Dataset("sales").Table("v_orders").Metadata(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if md.Type != bigquery.ViewTable || len(md.Schema) != 2 {
		t.Errorf("view metadata %+v", md)
	}
	_, err = c.Query("SELECT * FROM v_orders").Read(ctx(t)) // needs the default dataset
	if err == nil {
		t.Errorf("an unqualified table without a default dataset should fail")
	}
	q := c.Query("SELECT count(*) FROM v_orders")
	q.DefaultDatasetID = "sales"
	it, err := q.Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if rows := readAll(t, it); rows[0][0] != int64(1) {
		t.Errorf("view count %v", rows)
	}

	q = c.Query("SELECT column_name, data_type, is_partitioning_column, clustering_ordinal_position " +
		"FROM `test-proj.sales.INFORMATION_SCHEMA.COLUMNS` WHERE table_name = @t ORDER BY ordinal_position")
	q.Parameters = []bigquery.QueryParameter{{Name: "t", Value: "orders"}}
	it, err = q.Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	rows := readAll(t, it)
	if len(rows) != 9 || rows[0][1] != "INT64" || rows[7][1] != "ARRAY<STRING>" ||
		rows[8][1] != "STRUCT<city STRING, zip INT64>" || rows[5][2] != "YES" || rows[1][3] != int64(1) {
		t.Errorf("COLUMNS %v", rows)
	}
	it, err = c.Query("SELECT table_name, table_type FROM `test-proj.sales.INFORMATION_SCHEMA.TABLES` ORDER BY 1").Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if rows := readAll(t, it); len(rows) != 2 || rows[1][1] != "VIEW" || rows[0][1] != "BASE TABLE" {
		t.Errorf("TABLES %v", rows)
	}
	it, err = c.Query("SELECT total_rows FROM `test-proj.region-eu.INFORMATION_SCHEMA.TABLE_STORAGE` WHERE table_name = 'orders'").Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if rows := readAll(t, it); len(rows) != 1 || rows[0][0] != int64(3) {
		t.Errorf("TABLE_STORAGE %v", rows)
	}
	it, err = c.Query("SELECT row_count, type FROM `test-proj.sales.__TABLES__` WHERE table_id = \"orders\"").Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if rows := readAll(t, it); len(rows) != 1 || rows[0][0] != int64(3) || rows[0][1] != int64(1) {
		t.Errorf("__TABLES__ %v", rows)
	}
}

func TestTableRead(t *testing.T) {
	fake, c := start(t)
	fake.SetPageRows(2)
	rows := readAll(t, c.Dataset("sales").Table("orders").Read(ctx(t)))
	if len(rows) != 3 || rows[2][0] != int64(3) {
		t.Errorf("tabledata.list rows %v", rows)
	}
}

func TestJobRunAndRead(t *testing.T) {
	_, c := start(t)
	job, err := c.Query("SELECT id FROM sales.orders WHERE id > 1 ORDER BY id").Run(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := job.Wait(ctx(t))
	if err != nil || st.Err() != nil {
		t.Fatalf("Wait: %v %v", err, st)
	}
	it, err := job.Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if rows := readAll(t, it); len(rows) != 2 || rows[1][0] != int64(3) {
		t.Errorf("rows %v", rows)
	}
}

func TestStringLiteralsAndComments(t *testing.T) {
	_, c := start(t)
	it, err := c.Query(`SELECT "it's" AS a, 'say \'hi\'' AS b, r'\d' AS c, """x"y""" AS d # trailing comment
		FROM sales.orders WHERE id = 1`).Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	rows := readAll(t, it)
	if rows[0][0] != "it's" || rows[0][1] != "say 'hi'" || rows[0][2] != `\d` || rows[0][3] != `x"y` {
		t.Errorf("literals %v", rows[0])
	}
}

func httpGet(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func requireReason(t *testing.T, err error, code int, reason string) {
	t.Helper()
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) {
		t.Fatalf("error %v (%T), want a *googleapi.Error %d %s", err, err, code, reason)
	}
	if gerr.Code != code || len(gerr.Errors) == 0 || gerr.Errors[0].Reason != reason {
		t.Fatalf("error %v, want %d %s", err, code, reason)
	}
}
