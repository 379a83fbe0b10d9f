package keboola_test

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/connectors/keboola"
	"github.com/agnesdata/agnes/connectors/keboola/kbcfake"
)

var ordersSpec = connectors.TableSpec{ID: "orders", Bucket: "in.c-crm", SourceTable: "orders", Strategy: connectors.StrategyFullRefresh}

// query runs q on the committed extract of w; values come back as text,
// NULL as "<NULL>".
func query(t *testing.T, w *extract.Writer, q string) [][]string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("ATTACH '" + filepath.Join(w.Dir(), extract.DBFile) + "' AS x (READ_ONLY); USE x"); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
			if !v.Valid {
				row[i] = "<NULL>"
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// column returns one column of a result.
func column(rows [][]string, i int) []string {
	out := make([]string, len(rows))
	for j, r := range rows {
		out[j] = r[i]
	}
	return out
}

// checkNoTokenLeak fails if the Storage token reached anything but the
// Storage API, or the Storage API did not get it.
func checkNoTokenLeak(t *testing.T, f *kbcfake.Server, token string) {
	t.Helper()
	for _, r := range f.Requests() {
		api := r.Server == "storage" && strings.HasPrefix(r.Path, "/v2/storage/")
		sent := false
		for _, vals := range r.Header {
			for _, v := range vals {
				sent = sent || strings.Contains(v, token)
			}
		}
		sent = sent || strings.Contains(r.Query.Encode(), token)
		if api != sent {
			t.Errorf("%s %s %s: token sent = %t", r.Server, r.Method, r.Path, sent)
		}
	}
}

func count(f *kbcfake.Server, server, pathPrefix string) int {
	n := 0
	for _, r := range f.Requests() {
		if r.Server == server && strings.HasPrefix(r.Path, pathPrefix) {
			n++
		}
	}
	return n
}

// TestSlicedExport: values with commas, quotes, newlines and non-ASCII
// come through header-less slices exactly, typed by column metadata.
func TestSlicedExport(t *testing.T) {
	f := newFake(t)
	tbl, w := extractOne(t, connect(t, f), ordersSpec)
	if tbl.Rows != int64(len(tricky)) || tbl.Description != "Orders from the CRM" {
		t.Errorf("table = %+v", tbl.Meta)
	}
	if n := count(f, "gcs", "/storage/v1/b/"); n != (len(tricky)+1)/2 {
		t.Errorf("%d slice downloads, want %d", n, (len(tricky)+1)/2)
	}
	got := query(t, w, "SELECT COLUMNS(*)::VARCHAR FROM orders ORDER BY order_id")
	want := ordersTable().Rows
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i, r := range want {
		wantRow := slices.Clone(r.Values)
		if !slices.Equal(got[i], wantRow) {
			t.Errorf("row %d = %q\nwant     %q", i, got[i], wantRow)
		}
	}
	types := query(t, w, "SELECT typeof(order_id), typeof(status), typeof(amount), typeof(updated_at), typeof(note) FROM orders LIMIT 1")
	if want := []string{"BIGINT", "VARCHAR", "DECIMAL(12,2)", "TIMESTAMP", "VARCHAR"}; !slices.Equal(types[0], want) {
		t.Errorf("types = %v, want %v", types[0], want)
	}
	checkNoTokenLeak(t, f, f.Token())
}

// TestProviders downloads sliced and single-file exports from each cloud.
func TestProviders(t *testing.T) {
	for _, provider := range []string{kbcfake.GCP, kbcfake.AWS, kbcfake.Azure} {
		for _, sliced := range []bool{true, false} {
			t.Run(provider+"/sliced="+strconv.FormatBool(sliced), func(t *testing.T) {
				f := newFake(t)
				f.SetProvider(provider)
				f.SetSliced(sliced)
				tbl, w := extractOne(t, connect(t, f), ordersSpec)
				if tbl.Rows != int64(len(tricky)) {
					t.Errorf("rows = %d", tbl.Rows)
				}
				notes := column(query(t, w, "SELECT note FROM orders ORDER BY order_id"), 0)
				if !slices.Equal(notes, tricky) {
					t.Errorf("notes = %q", notes)
				}
				cloud := map[string]string{kbcfake.GCP: "gcs", kbcfake.AWS: "s3", kbcfake.Azure: "azure"}[provider]
				if n := count(f, cloud, "/"); sliced != (n > 0) {
					t.Errorf("%d requests to %s", n, cloud)
				}
				if n := count(f, "storage", "/_signed/files/"); n != 1 {
					t.Errorf("%d requests of the signed url, want 1", n)
				}
				checkNoTokenLeak(t, f, f.Token())
			})
		}
	}
}

// TestCloudEndpointsFromEnvironment: STORAGE_EMULATOR_HOST and
// AWS_ENDPOINT_URL point the downloads at the fakes, as in Google's and
// AWS's own clients.
func TestCloudEndpointsFromEnvironment(t *testing.T) {
	f := newFake(t)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(f.GCSEndpoint(), "http://"))
	t.Setenv("AWS_ENDPOINT_URL", f.S3Endpoint())
	for _, provider := range []string{kbcfake.GCP, kbcfake.AWS} {
		f.SetProvider(provider)
		c, err := keboola.New("kbc_sales", fastSettings(f))
		if err != nil {
			t.Fatal(err)
		}
		if tbl, _ := extractOne(t, c, ordersSpec); tbl.Rows != int64(len(tricky)) {
			t.Errorf("%s: rows = %d", provider, tbl.Rows)
		}
	}
}

// TestExpiredCredentials: a slice refused for expired credentials is
// fetched again with the credentials of a fresh file detail.
func TestExpiredCredentials(t *testing.T) {
	for _, provider := range []string{kbcfake.GCP, kbcfake.AWS, kbcfake.Azure} {
		t.Run(provider, func(t *testing.T) {
			f := newFake(t)
			f.SetProvider(provider)
			f.ExpireCredentialsOnce()
			if tbl, _ := extractOne(t, connect(t, f), ordersSpec); tbl.Rows != int64(len(tricky)) {
				t.Errorf("rows = %d", tbl.Rows)
			}
			if n := count(f, "storage", "/v2/storage/files/"); n != 2 {
				t.Errorf("%d file details, want 2 (the second for fresh credentials)", n)
			}
		})
	}
}

// TestParquetExport asks for Parquet slices and gets the same table.
func TestParquetExport(t *testing.T) {
	f := newFake(t)
	s := fastSettings(f)
	s.FileType = "parquet"
	_, w := extractOne(t, connectWith(t, s, f), ordersSpec)
	got := query(t, w, "SELECT COLUMNS(*)::VARCHAR, typeof(amount) FROM orders ORDER BY order_id")
	for i, r := range ordersTable().Rows {
		if want := append(slices.Clone(r.Values), "DECIMAL(12,2)"); !slices.Equal(got[i], want) {
			t.Errorf("row %d = %q, want %q", i, got[i], want)
		}
	}
	if body := f.Exports()[0].Params; body.FileType != "parquet" {
		t.Errorf("export asked for %q", body.FileType)
	}
}

// TestFiltersArriveIntact: where_filters go out as a JSON array, exactly,
// and select the rows Keboola would.
func TestFiltersArriveIntact(t *testing.T) {
	f := newFake(t)
	spec := ordersSpec
	spec.WhereFilters = []connectors.WhereFilter{
		{Column: "status", Operator: "eq", Values: []string{"open", "pending"}},
		{Column: "amount", Operator: "ge", Values: []string{"150"}, DataType: "DOUBLE"},
		{Column: "updated_at", Operator: "ge", Values: []string{"{{last_week}}"}},
	}
	_, w := extractOne(t, connect(t, f), spec)

	exp := f.Exports()
	if len(exp) != 1 || exp[0].ContentType != "application/json" {
		t.Fatalf("exports = %+v", exp)
	}
	var body struct {
		WhereFilters json.RawMessage `json:"whereFilters"`
		Columns      string          `json:"columns"`
	}
	if err := json.Unmarshal(exp[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	want := `[{"column":"status","operator":"eq","values":["open","pending"]},` +
		`{"column":"amount","operator":"ge","values":["150"],"dataType":"DOUBLE"},` +
		`{"column":"updated_at","operator":"ge","values":["2026-05-12"]}]`
	if string(body.WhereFilters) != want {
		t.Errorf("whereFilters sent as\n%s\nwant\n%s", body.WhereFilters, want)
	}
	if body.Columns != "order_id,status,amount,updated_at,note" {
		t.Errorf("columns sent as %q", body.Columns)
	}
	var ids []string
	for _, r := range ordersTable().Rows {
		amount, _ := strconv.ParseFloat(r.Values[2], 64)
		if (r.Values[1] == "open" || r.Values[1] == "pending") && amount >= 150 && r.Values[3] >= "2026-05-12" {
			ids = append(ids, r.Values[0])
		}
	}
	got := column(query(t, w, "SELECT order_id FROM orders ORDER BY order_id"), 0)
	if len(ids) == 0 || !slices.Equal(got, ids) {
		t.Errorf("rows %v, want %v", got, ids)
	}

	for name, filter := range map[string]connectors.WhereFilter{
		"unknown column":      {Column: "nope", Values: []string{"x"}},
		"unknown operator":    {Column: "status", Operator: "like", Values: []string{"x"}},
		"no values":           {Column: "status"},
		"several values, gt":  {Column: "amount", Operator: "gt", Values: []string{"1", "2"}},
		"unknown data type":   {Column: "amount", Operator: "gt", Values: []string{"1"}, DataType: "MONEY"},
		"unknown placeholder": {Column: "updated_at", Operator: "ge", Values: []string{"{{lasst_week}}"}},
	} {
		f.ResetLog()
		spec.WhereFilters = []connectors.WhereFilter{filter}
		w, _ := extract.NewWriter(filepath.Join(t.TempDir(), "kbc_sales"))
		_, err := connect(t, f).Extract(context.Background(), spec, w)
		w.Close()
		var in *connectors.InputError
		if !errors.As(err, &in) || !strings.Contains(err.Error(), "where_filters[0]") {
			t.Errorf("%s: %v, want an InputError about where_filters[0]", name, err)
		}
		if len(f.Exports()) != 0 {
			t.Errorf("%s: exported anyway", name)
		}
	}
}

// TestIncrementalWindowBoundary: changedSince is the committed watermark
// minus the window, in integer UTC seconds; a row changed exactly then is
// fetched, one a second earlier is not; the watermark moves only when the
// pipeline commits it.
func TestIncrementalWindowBoundary(t *testing.T) {
	f := newFake(t)
	c := connect(t, f)
	spec := connectors.TableSpec{ID: "orders", Bucket: "in.c-crm", SourceTable: "orders",
		Strategy: connectors.StrategyIncremental, IncrementalWindowDays: 2}
	ctx := context.Background()
	tbl, w := extractOne(t, c, spec)
	if tbl.Watermark != day.Format(time.RFC3339) {
		t.Errorf("first watermark %q, want the export job's time %s", tbl.Watermark, day.Format(time.RFC3339))
	}
	if p := f.Exports()[0].Params; p.ChangedSince != "" {
		t.Errorf("the first load asked for changes since %s", p.ChangedSince)
	}

	boundary := day.AddDate(0, 0, -2)
	later := day.Add(time.Hour)
	f.SetNow(func() time.Time { return later })
	f.Update("in.c-crm.orders", func(tb *kbcfake.Table) {
		tb.Rows[2].Values[4], tb.Rows[2].Changed = "at the boundary", boundary
		tb.Rows[3].Values[4], tb.Rows[3].Changed = "a second too early", boundary.Add(-time.Second)
		tb.Rows = append(tb.Rows, kbcfake.Row{Values: []string{"100", "open", "1.00", later.Format(time.DateTime), "new"}, Changed: later})
	})
	// Not committed yet: a second Extract starts from the same watermark.
	for range 2 {
		if _, err := c.Extract(ctx, spec, w); err != nil {
			t.Fatal(err)
		}
	}
	exp := f.Exports()
	for _, e := range exp[1:] {
		var body map[string]json.RawMessage
		if err := json.Unmarshal(e.Body, &body); err != nil {
			t.Fatal(err)
		}
		if got := string(body["changedSince"]); got != strconv.FormatInt(boundary.Unix(), 10) {
			t.Errorf("changedSince sent as %s, want the integer %d", got, boundary.Unix())
		}
	}
	tbl, err := c.Extract(ctx, spec, w)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(ctx, tbl); err != nil {
		t.Fatal(err)
	}
	if tbl.Watermark != later.Format(time.RFC3339) || tbl.Rows != int64(len(tricky)+1) {
		t.Errorf("after the delta: watermark %q, rows %d", tbl.Watermark, tbl.Rows)
	}
	notes := query(t, w, "SELECT order_id, note FROM orders WHERE order_id IN (3, 4, 100) ORDER BY order_id")
	want := [][]string{{"3", "at the boundary"}, {"4", tricky[3]}, {"100", "new"}}
	if !slices.EqualFunc(notes, want, slices.Equal) {
		t.Errorf("rows = %q, want %q", notes, want)
	}
	if _, err := c.Extract(ctx, spec, w); err != nil {
		t.Fatal(err)
	}
	if p := f.Exports()[len(f.Exports())-1].Params; p.ChangedSince != strconv.FormatInt(later.AddDate(0, 0, -2).Unix(), 10) {
		t.Errorf("after the commit, changedSince = %s", p.ChangedSince)
	}
}

// TestEmptyDelta: a delta with no rows (an empty manifest) keeps the file
// as it is and advances the watermark; an empty table is zero rows with
// its columns.
func TestEmptyDelta(t *testing.T) {
	f := newFake(t)
	c := connect(t, f)
	spec := connectors.TableSpec{ID: "customers", Bucket: "in.c-crm", SourceTable: "customers", Strategy: connectors.StrategyIncremental}
	first, w := extractOne(t, c, spec)
	path := filepath.Join(w.Dir(), extract.DataDir, "customers.parquet")
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	later := day.Add(time.Hour)
	f.SetNow(func() time.Time { return later })
	f.ResetLog()
	tbl, err := c.Extract(context.Background(), spec, w)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(f, "gcs", "/"); n != 0 {
		t.Errorf("%d slices downloaded for an empty delta", n)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || tbl.MD5 != first.MD5 || tbl.Rows != 3 || tbl.Watermark != later.Format(time.RFC3339) {
		t.Errorf("after an empty delta: %+v (same file %t)", tbl.Meta, os.SameFile(before, after))
	}

	for _, manifest := range []bool{true, false} { // entries: [] or one empty slice
		f.SetEmptyManifest(manifest)
		empty, w2 := extractOne(t, c, connectors.TableSpec{ID: "empty", Bucket: "out.c-finance", SourceTable: "empty"})
		if empty.Rows != 0 {
			t.Errorf("empty table has %d rows", empty.Rows)
		}
		if cols := query(t, w2, "SELECT column_name FROM (DESCRIBE empty)"); len(cols) != 2 || cols[0][0] != "a" || cols[1][0] != "b" {
			t.Errorf("empty table columns %v", cols)
		}
	}
	if n := count(f, "gcs", "/"); n != 1 {
		t.Errorf("%d slices downloaded, want the one empty slice", n)
	}
}

// TestPollingThrough503: a maintenance answer while polling is waited out
// (Retry-After) and polling goes on; the job needs three polls.
func TestPollingThrough503(t *testing.T) {
	f := newFake(t)
	f.MaintenanceOnNextPolls(1)
	if tbl, _ := extractOne(t, connect(t, f), ordersSpec); tbl.Rows != int64(len(tricky)) {
		t.Errorf("rows = %d", tbl.Rows)
	}
	if n := count(f, "storage", "/v2/storage/jobs/"); n != 4 {
		t.Errorf("%d job polls, want 4 (waiting, 503, processing, success)", n)
	}
}

// TestFailingJob: a job that ends in error fails Extract with Keboola's
// message and exceptionId, and the previous Parquet stays.
func TestFailingJob(t *testing.T) {
	f := newFake(t)
	c := connect(t, f)
	first, w := extractOne(t, c, ordersSpec)
	f.FailNextExport(kbcfake.JobError{Code: "storage.export.failed", Message: "Snowflake ran out of credits", ExceptionID: "exception-7d1f0c2a"})
	_, err := c.Extract(context.Background(), ordersSpec, w)
	var je *keboola.JobError
	if !errors.As(err, &je) || je.ExceptionID != "exception-7d1f0c2a" || je.Message != "Snowflake ran out of credits" {
		t.Fatalf("Extract = %v, want a JobError", err)
	}
	for _, s := range []string{"Snowflake ran out of credits", "exception-7d1f0c2a", "in.c-crm.orders", "kbc_sales"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not name %s", err, s)
		}
	}
	if sum := fileMD5(t, filepath.Join(w.Dir(), extract.DataDir, "orders.parquet")); sum != first.MD5 {
		t.Error("the previous Parquet changed")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(w.Dir(), ".keboola-*")); len(leftovers) > 0 {
		t.Errorf("scratch left behind: %v", leftovers)
	}
}

func fileMD5(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// TestWrongToken: a 401 is "Keboola rejected the token for source X",
// never retried, and the error never holds the token.
func TestWrongToken(t *testing.T) {
	f := newFake(t)
	s := fastSettings(f)
	s.Token = connectors.NewSecret("1234-not-a-valid-token")
	c := connectWith(t, s, f)
	w, err := extract.NewWriter(filepath.Join(t.TempDir(), "kbc_sales"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, discoverErr := c.Discover(context.Background())
	_, extractErr := c.Extract(context.Background(), ordersSpec, w)
	for _, err := range []error{c.Verify(context.Background()), discoverErr, extractErr} {
		if !errors.Is(err, keboola.ErrTokenRejected) || !strings.HasPrefix(err.Error(), "Keboola rejected the token for source kbc_sales") {
			t.Errorf("error = %v", err)
		}
		if strings.Contains(err.Error(), "not-a-valid-token") {
			t.Errorf("the error shows the token: %v", err)
		}
	}
	if n := len(f.Requests()); n != 3 {
		t.Errorf("%d requests for 3 calls: a 401 was retried", n)
	}
}

// TestTableAccess: an unknown table and one outside the token's buckets
// are connectors.ErrNotFound with Keboola's reason, not retried.
func TestTableAccess(t *testing.T) {
	f := newFake(t)
	s := fastSettings(f)
	s.Token = connectors.NewSecret(f.NewToken("out.c-finance"))
	limited := connectWith(t, s, f)
	found, err := limited.Discover(context.Background())
	if err != nil || len(found) != 1 || found[0].SourceTable != "empty" {
		t.Errorf("a token for out.c-finance discovers %+v, %v", found, err)
	}
	w, err := extract.NewWriter(filepath.Join(t.TempDir(), "kbc_sales"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for name, tc := range map[string]struct {
		c    *keboola.Connector
		spec connectors.TableSpec
		says string
	}{
		"outside the token's buckets": {limited, ordersSpec, "may not read in.c-crm.orders"},
		"unknown table":               {connect(t, f), connectors.TableSpec{ID: "missing", Bucket: "in.c-crm", SourceTable: "missing"}, "Keboola has no in.c-crm.missing"},
	} {
		f.ResetLog()
		_, err := tc.c.Extract(context.Background(), tc.spec, w)
		if !errors.Is(err, connectors.ErrNotFound) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want ErrNotFound saying %q", name, err, tc.says)
		}
		if n := len(f.Requests()); n != 1 {
			t.Errorf("%s: %d requests, want 1", name, n)
		}
	}
}

// TestRetries: 429, 500, 502, 503 and 504 are retried; other errors are not.
func TestRetries(t *testing.T) {
	f := newFake(t)
	c := connect(t, f)
	for _, status := range []int{429, 500, 502, 503, 504} {
		f.ResetLog()
		f.FailNextRequests(status, 2)
		if err := c.Verify(context.Background()); err != nil {
			t.Errorf("%d twice: %v", status, err)
		}
		if n := len(f.Requests()); n != 3 {
			t.Errorf("%d twice: %d requests, want 3", status, n)
		}
	}
	for _, status := range []int{400, 403, 404, 409, 501} {
		f.ResetLog()
		f.FailNextRequests(status, 1)
		var ae *keboola.APIError
		if err := c.Verify(context.Background()); !errors.As(err, &ae) || ae.Status != status {
			t.Errorf("%d: %v", status, err)
		}
		if n := len(f.Requests()); n != 1 {
			t.Errorf("%d: %d requests, want 1", status, n)
		}
	}
	f.ResetLog()
	f.FailNextRequests(503, 6)
	if err := c.Verify(context.Background()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("503 six times: %v", err)
	}
	if n := len(f.Requests()); n != 6 {
		t.Errorf("503 six times: %d requests, want 1 + 5 retries", n)
	}
}

// TestTransportErrorsAreRetried: a connection dropped before any answer
// is retried.
func TestTransportErrorsAreRetried(t *testing.T) {
	f := newFake(t)
	target, _ := url.Parse(f.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	var dropped atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if dropped.Add(1) == 1 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	s := fastSettings(f)
	s.StackURL = front.URL
	if err := connectWith(t, s, f).Verify(context.Background()); err != nil {
		t.Fatalf("Verify through a dropped connection: %v", err)
	}
	if dropped.Load() != 2 {
		t.Errorf("%d attempts, want 2", dropped.Load())
	}
}

// TestRedirectsKeepTheToken: a redirect to another host does not carry
// the Storage token; one on the same host does.
func TestRedirectsKeepTheToken(t *testing.T) {
	var got atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("X-StorageApi-Token"))
		io.WriteString(w, `{"owner": {"id": 1}}`)
	}))
	defer other.Close()
	var sameHost atomic.Value
	var stack *httptest.Server
	stack = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/storage/tokens/verify":
			http.Redirect(w, r, stack.URL+"/moved", http.StatusFound)
		case "/moved":
			sameHost.Store(r.Header.Get("X-StorageApi-Token"))
			// 127.0.0.1 and localhost are different hosts to the client.
			_, port, _ := net.SplitHostPort(strings.TrimPrefix(other.URL, "http://"))
			http.Redirect(w, r, "http://localhost:"+port+"/elsewhere", http.StatusFound)
		}
	}))
	defer stack.Close()
	c, err := keboola.New("kbc_sales", keboola.Settings{StackURL: stack.URL, Token: connectors.NewSecret("the-token")})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sameHost.Load() != "the-token" || got.Load() != "" {
		t.Errorf("token on the same host %q, on another %q", sameHost.Load(), got.Load())
	}
}

// TestExportTimeout: a job that does not end within export_timeout fails
// with its id and last status.
func TestExportTimeout(t *testing.T) {
	f := newFake(t)
	f.SetReadyAfterPolls(1 << 30)
	s := fastSettings(f)
	s.ExportTimeout = 20 * time.Millisecond
	w, err := extract.NewWriter(filepath.Join(t.TempDir(), "kbc_sales"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, err = connectWith(t, s, f).Extract(context.Background(), ordersSpec, w)
	if err == nil || !regexp.MustCompile(`the export of in\.c-crm\.orders \(job \d+\) is still processing after 20ms`).MatchString(err.Error()) {
		t.Errorf("Extract = %v", err)
	}
}
