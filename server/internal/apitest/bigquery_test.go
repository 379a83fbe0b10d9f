package apitest

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/bigquery/bqfake"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// bigQueryFake holds sales.orders (3 000 bytes to scan), sales.events
// (50 000 bytes) and hr.people.
func bigQueryFake(t *testing.T) *bqfake.Server {
	t.Helper()
	f, err := bqfake.New("test-proj")
	require.NoError(t, err)
	t.Cleanup(f.Close)
	require.NoError(t, f.AddDataset("sales", "EU"))
	require.NoError(t, f.AddDataset("hr", "EU"))
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	require.NoError(t, f.AddTable("sales", bqfake.Table{ID: "orders", Description: "Orders", NumBytes: 3000,
		Schema: []bqfake.Field{{Name: "id", Type: "INTEGER", Mode: "REQUIRED"}, {Name: "customer", Type: "STRING"},
			{Name: "amount", Type: "NUMERIC"}, {Name: "ts", Type: "TIMESTAMP"}},
		Rows: [][]any{{1, "ann", "10.5", at}, {2, "bob", "3.25", at}, {3, "ann", "7", at}, {4, "cy", nil, at}, {5, "Zoë, \"z\"", "1", at}}}))
	require.NoError(t, f.AddTable("sales", bqfake.Table{ID: "events", NumBytes: 50000,
		Schema: []bqfake.Field{{Name: "id", Type: "INTEGER"}}, Rows: [][]any{{1}}}))
	require.NoError(t, f.AddTable("hr", bqfake.Table{ID: "people",
		Schema: []bqfake.Field{{Name: "name", Type: "STRING"}}, Rows: [][]any{{"ann"}}}))
	f.SetPageRows(2) // results span pages
	return f
}

func bigQueryServer(t *testing.T, f *bqfake.Server, opts ...ts.Option) *ts.Server {
	t.Helper()
	return ts.New(t, append([]ts.Option{ts.WithConfig(func(c *configT) {
		c.Sources = map[string]map[string]any{"bq": {"type": "bigquery", "project": "test-proj", "endpoint": f.URL()}}
		c.Query.RemoteMaxScanBytes = 4000
		c.Query.RemoteDailyBytes = 10000
	})}, opts...)...)
}

// jobsQueries are the SQL texts the fake ran (not dry runs).
func jobsQueries(f *bqfake.Server) []string {
	var out []string
	for _, r := range f.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/queries") {
			var body struct{ Query string }
			_ = r.JSON(&body)
			out = append(out, body.Query)
		}
	}
	return out
}

// TestBigQueryRemoteAndMaterialized: remote tables are sandboxed and
// granted like local ones, pushed down with their scan cap and the user's
// daily quota, and answered through every result path; materialized SQL is
// synced into Parquet and distributed like any local table.
func TestBigQueryRemoteAndMaterialized(t *testing.T) {
	f := bigQueryFake(t)
	s := bigQueryServer(t, f)
	ctx := context.Background()
	admin := s.Clients(ts.Connect, s.AdminToken)
	t.Setenv("AGNES_CONFIG_DIR", t.TempDir())
	t.Setenv("AGNES_SERVER", s.URL)
	t.Setenv("AGNES_TOKEN", s.UserToken)

	v, err := admin.Admin.VerifySource(ctx, &agnesv1.VerifySourceRequest{Source: "bq"})
	require.NoError(t, err)
	require.Equal(t, "ok", v.GetSource().GetHealth(), v.GetSource().GetMessage())
	disc, err := admin.Admin.DiscoverTables(ctx, &agnesv1.DiscoverTablesRequest{Source: "bq", Dataset: "sales"})
	require.NoError(t, err)
	require.Len(t, disc.GetTables(), 2)
	require.Equal(t, "sales", disc.GetTables()[0].GetBucket())

	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"name": "r1", "source": "bq", "bucket": "sales", "source_table": "orders", "query_mode": "remote",
			"where_filters": []map[string]any{{"column": "id", "operator": "eq", "values": []string{"1"}}}}, "where_filters"},
		{map[string]any{"name": "r2", "source": "bq", "source_table": "orders", "query_mode": "remote"}, "bucket"},
		{map[string]any{"name": "r3", "source": "bq", "bucket": "sales", "source_table": "orders", "query_mode": "remote",
			"sync_strategy": "incremental", "incremental_column": "ts"}, "sync_strategy"},
		{map[string]any{"name": "r4", "source": "bq", "bucket": "sa`les", "source_table": "orders", "query_mode": "remote"}, "bucket"},
	} {
		res := s.REST(t, http.MethodPost, "/api/admin/register-table", s.AdminToken, tc.body)
		require.Equal(t, http.StatusBadRequest, res.Status, "%s", res.Body)
		detail, _ := res.Error(t)
		require.True(t, strings.HasPrefix(detail, tc.field+":"), detail)
	}
	register(t, s, map[string]any{"name": "orders", "source_type": "bigquery", "source": "bq", "bucket": "sales", "source_table": "orders", "query_mode": "remote"})
	register(t, s, map[string]any{"name": "events", "source": "bq", "source_table": "sales.events", "query_mode": "remote"})
	register(t, s, map[string]any{"name": "customers", "source": "bq", "query_mode": "materialized",
		"source_query": "SELECT customer, count(*) AS orders FROM `test-proj.sales.orders` GROUP BY customer"})
	s.AddTable(t, "shop", "local_t", `SELECT 1 AS x`)
	s.Rebuild(t)

	// A sync materializes the SQL and leaves the remote tables where they are.
	job := syncNow(t, s)
	require.Equal(t, agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, job.GetState(), "%v", job)
	require.Empty(t, jobsQueries(f)[1:], "only the materialization ran a query: %v", jobsQueries(f))

	// Remote tables answer to grants exactly like local ones.
	user := s.Clients(ts.Connect, s.UserToken)
	const q = `SELECT id, customer FROM orders WHERE amount > 2 ORDER BY id NULLS LAST`
	_, err = user.Query.Query(ctx, &agnesv1.QueryRequest{Sql: q})
	require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err))
	_, err = user.Query.Query(ctx, &agnesv1.QueryRequest{Sql: `SELECT * FROM nowhere`})
	require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err))
	s.Grant(t, "orders")
	s.Grant(t, "customers")
	s.Grant(t, "events")

	// Pushed down (paged by BigQuery, 2 rows a page), answered unary over
	// gRPC and REST, and streamed as NDJSON.
	f.ResetRequests()
	res, err := s.Clients(ts.GRPC, s.UserToken).Query.Query(ctx, &agnesv1.QueryRequest{Sql: q})
	require.NoError(t, err)
	require.Len(t, res.GetRows(), 3)
	require.Equal(t, "bob", res.GetRows()[1].GetValues()[1].GetStringValue())
	require.Equal(t, []string{"SELECT id, customer FROM `test-proj.sales.orders` AS `orders` WHERE amount > 2 ORDER BY id NULLS LAST"}, jobsQueries(f))
	rest := s.REST(t, http.MethodPost, "/api/query", s.UserToken, map[string]any{"sql": `SELECT customer FROM orders WHERE id = 5`})
	require.Equal(t, http.StatusOK, rest.Status, "%s", rest.Body)
	var answer struct {
		Columns     []string `json:"columns"`
		ColumnTypes []string `json:"column_types"`
		Rows        [][]any  `json:"rows"`
	}
	rest.JSON(t, &answer)
	require.Equal(t, []string{"customer"}, answer.Columns)
	require.Equal(t, []string{"VARCHAR"}, answer.ColumnTypes)
	require.Equal(t, [][]any{{`Zoë, "z"`}}, answer.Rows)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/query/stream", strings.NewReader(`{"sql": "SELECT id FROM orders", "batch_rows": 2}`))
	req.Header.Set("Authorization", "Bearer "+s.UserToken)
	sres, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var kinds []string
	sc := bufio.NewScanner(sres.Body)
	for sc.Scan() {
		var line struct {
			Result map[string]json.RawMessage `json:"result"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		for k := range line.Result {
			kinds = append(kinds, k)
		}
	}
	sres.Body.Close()
	require.Equal(t, []string{"schema", "batch", "batch", "batch", "summary"}, kinds)

	// What cannot run alike on both engines, or in one place, is refused.
	for sql, want := range map[string]string{
		`SELECT date_trunc('month', ts) FROM orders`:           "cannot be pushed down to BigQuery",
		`SELECT * FROM orders ORDER BY id`:                     "NULLS FIRST/LAST",
		`SELECT * FROM orders JOIN customers USING (customer)`: "mixes local tables (customers) with remote BigQuery tables (orders)",
		`SELECT * FROM events`:                                 "over the cap of 3.9 KiB (4000 bytes)",
	} {
		_, err := user.Query.Query(ctx, &agnesv1.QueryRequest{Sql: sql})
		require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), sql)
		require.Contains(t, err.Error(), want, sql)
	}
	require.NotContains(t, strings.Join(jobsQueries(f), "\n"), "events", "over the cap: dry run only")

	// Three queries of 3 000 bytes used 9 000 of the 10 000 a day: the next is 429.
	rest = s.REST(t, http.MethodPost, "/api/query", s.UserToken, map[string]any{"sql": `SELECT id FROM orders`})
	require.Equal(t, http.StatusTooManyRequests, rest.Status, "%s", rest.Body)
	detail, _ := rest.Error(t)
	require.Contains(t, detail, "would scan 2.9 KiB (3000 bytes), and 8.8 KiB (9000 bytes) of your 9.8 KiB (10000 bytes)")
	require.NotEmpty(t, rest.Header.Get("Retry-After"))
	_, err = admin.Query.Query(ctx, &agnesv1.QueryRequest{Sql: `SELECT id FROM orders`})
	require.NoError(t, err, "the quota is per user")

	// The materialized table is local: queried, in the manifest, pulled; the
	// remote ones are not distributed.
	require.Equal(t, [][]string{{"ann", "2"}}, queryStrings(t, s, s.UserToken, `SELECT customer, CAST(orders AS VARCHAR) FROM customers WHERE customer = 'ann'`))
	man, err := user.Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{})
	require.NoError(t, err)
	require.Len(t, man.GetTables(), 1)
	require.Equal(t, "materialized", man.GetTables()["customers"].GetQueryMode())
	pulled := pullJSON(t, t.TempDir())
	require.Equal(t, []string{"customers"}, pulled.Downloaded)
	require.EqualValues(t, 4, localCount(t, pulled.Database, "customers"))
	cat, err := user.Catalog.ListCatalogTables(ctx, &agnesv1.ListCatalogTablesRequest{})
	require.NoError(t, err)
	modes := map[string]string{}
	for _, c := range cat.GetTables() {
		modes[c.GetId()] = c.GetQueryMode()
	}
	require.Equal(t, map[string]string{"orders": "remote", "events": "remote", "customers": "materialized"}, modes)

	// Unregistered, a remote table is gone for queries too.
	_, err = admin.Admin.DeleteRegisteredTable(ctx, &agnesv1.DeleteRegisteredTableRequest{TableId: "orders"})
	require.NoError(t, err)
	_, err = admin.Query.Query(ctx, &agnesv1.QueryRequest{Sql: `SELECT id FROM orders`})
	require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
	require.Contains(t, err.Error(), "unknown table")
}

// TestBigQueryQuotaSurvivesRestart: the daily quota's counts are in the
// state store, so a restart does not hand a user today's bytes again.
func TestBigQueryQuotaSurvivesRestart(t *testing.T) {
	f := bigQueryFake(t)
	s := bigQueryServer(t, f)
	register(t, s, map[string]any{"name": "orders", "source": "bq", "bucket": "sales", "source_table": "orders", "query_mode": "remote"})
	s.Grant(t, "orders")
	query := func(s *ts.Server) *ts.RESTResponse {
		return s.REST(t, http.MethodPost, "/api/query", s.UserToken, map[string]any{"sql": `SELECT id FROM orders`})
	}
	for range 3 { // 3 × 3,000 of the 10,000 bytes a day
		res := query(s)
		require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	}
	require.Equal(t, http.StatusTooManyRequests, query(s).Status)
	s.Stop()

	s = bigQueryServer(t, f, ts.WithDataDir(s.DataDir))
	res := query(s)
	require.Equal(t, http.StatusTooManyRequests, res.Status, "%s", res.Body)
	detail, _ := res.Error(t)
	require.Contains(t, detail, "8.8 KiB (9000 bytes) of your 9.8 KiB (10000 bytes)")
	res = s.REST(t, http.MethodPost, "/api/query", s.AdminToken, map[string]any{"sql": `SELECT id FROM orders`})
	require.Equal(t, http.StatusOK, res.Status, "another user's count is their own: %s", res.Body)
}

// TestBigQueryUpstreamFailures: BigQuery refusing a remote query is a 503 with
// its message, a failing materialization fails the sync with BigQuery's message.
func TestBigQueryUpstreamFailures(t *testing.T) {
	f := bigQueryFake(t)
	s := bigQueryServer(t, f)
	ctx := context.Background()
	register(t, s, map[string]any{"name": "people", "source": "bq", "bucket": "hr", "source_table": "people", "query_mode": "remote"})
	register(t, s, map[string]any{"name": "bad_sql", "source": "bq", "query_mode": "materialized", "source_query": "SELECT nope FROM `test-proj.hr.people`"})

	f.Fail(bqfake.Fault{Path: "/jobs", Code: http.StatusForbidden, Reason: "accessDenied", Message: "Access Denied: the service account may not run jobs"})
	_, err := s.Clients(ts.Connect, s.AdminToken).Query.Query(ctx, &agnesv1.QueryRequest{Sql: `SELECT name FROM people`})
	require.Equal(t, connect.CodeUnavailable, connect.CodeOf(err))
	require.Contains(t, err.Error(), "Access Denied: the service account may not run jobs")

	job := syncNow(t, s, "bad_sql")
	require.Equal(t, agnesv1.SyncJobState_SYNC_JOB_STATE_FAILED, job.GetState())
	require.Contains(t, job.GetError(), "nope")
}
