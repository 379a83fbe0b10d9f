package apitest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/keboola/kbcfake"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// tricky are values a CSV export must carry intact: commas, quotes,
// newlines, non-ASCII.
var trickyNotes = []string{"plain", `a "quoted", multi-line` + "\nnote ž", "cancelled one", "Grüße, 世界"}

// ordersTable is in.c-crm.orders: untyped, typed by column metadata.
func ordersTable(changed time.Time) kbcfake.Table {
	statuses := []string{"open", "pending", "cancelled", "open"}
	t := kbcfake.Table{
		ID: "in.c-crm.orders", Columns: []string{"id", "status", "amount", "note"}, PrimaryKey: []string{"id"},
		Description: "CRM orders",
		ColumnMetadata: map[string][]kbcfake.Metadata{
			"id":     {kbcfake.BaseType("user", "INTEGER")},
			"amount": {kbcfake.BaseType("user", "NUMERIC"), {Key: "KBC.datatype.length", Value: "10,2", Provider: "user"}},
		},
	}
	for i, note := range trickyNotes {
		t.Rows = append(t.Rows, kbcfake.Row{Values: []string{fmt.Sprint(i + 1), statuses[i], fmt.Sprintf("%d.50", 10*(i+1)), note},
			Changed: changed})
	}
	return t
}

// kbcSource is a sources: entry for a Keboola source on the fake.
func kbcSource(f *kbcfake.Server, token string) map[string]any {
	return map[string]any{"type": "keboola", "stack_url": f.URL(), "token": token,
		"poll_interval": "2ms", "max_poll_interval": "10ms", "retry_wait": "5ms"}
}

// keboolaServer starts a server whose sources are on the fake, its file
// storage reached the way the real clients are pointed at emulators.
func keboolaServer(t *testing.T, f *kbcfake.Server, srcs map[string]map[string]any) *ts.Server {
	t.Helper()
	t.Setenv("STORAGE_EMULATOR_HOST", f.GCSEndpoint())
	t.Setenv("AWS_ENDPOINT_URL", f.S3Endpoint())
	return ts.New(t, ts.WithConfig(func(c *configT) { c.Sources = srcs }))
}

// syncNow triggers a sync of tables as the admin and waits for its end.
func syncNow(t *testing.T, s *ts.Server, tables ...string) *agnesv1.SyncJob {
	t.Helper()
	admin := s.Clients(ts.Connect, s.AdminToken)
	trig, err := admin.Sync.TriggerSync(context.Background(), &agnesv1.TriggerSyncRequest{Tables: tables})
	require.NoError(t, err)
	states := watch(t, admin, trig.GetJobId())
	return states[len(states)-1]
}

func register(t *testing.T, s *ts.Server, body map[string]any) {
	t.Helper()
	res := s.REST(t, http.MethodPost, "/api/admin/register-table", s.AdminToken, body)
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
}

func queryStrings(t *testing.T, s *ts.Server, token, sql string) [][]string {
	t.Helper()
	res, err := s.Clients(ts.Connect, token).Query.Query(context.Background(), &agnesv1.QueryRequest{Sql: sql})
	require.NoError(t, err, sql)
	var out [][]string
	for _, r := range res.GetRows() {
		var row []string
		for _, v := range r.GetValues() {
			switch {
			case v.GetStringValue() != "":
				row = append(row, v.GetStringValue())
			default:
				b, _ := v.MarshalJSON()
				row = append(row, strings.Trim(string(b), `"`))
			}
		}
		out = append(out, row)
	}
	return out
}

// TestKeboolaEndToEnd: register → sync → manifest → query → agnes pull, an
// incremental sync with filters, a failing export that leaves the served
// data alone, and a column description pushed back.
func TestKeboolaEndToEnd(t *testing.T) {
	f := kbcfake.New()
	defer f.Close()
	start := time.Now().UTC().Add(-10 * 24 * time.Hour).Truncate(time.Second)
	f.AddTable(ordersTable(start))
	f.AddTable(kbcfake.Table{ID: "in.c-crm.customers", Columns: []string{"id", "name"}, Rows: []kbcfake.Row{{Values: []string{"1", "Ann"}}}})
	s := keboolaServer(t, f, map[string]map[string]any{"kbc_sales": kbcSource(f, f.Token())})
	ctx := context.Background()
	admin := s.Clients(ts.Connect, s.AdminToken)
	t.Setenv("AGNES_CONFIG_DIR", t.TempDir())
	t.Setenv("AGNES_SERVER", s.URL)
	t.Setenv("AGNES_TOKEN", s.UserToken)

	// The source is listed with its type and checks out; no secret in sight.
	v, err := admin.Admin.VerifySource(ctx, &agnesv1.VerifySourceRequest{Source: "kbc_sales"})
	require.NoError(t, err)
	require.Equal(t, "ok", v.GetSource().GetHealth(), v.GetSource().GetMessage())
	list := s.REST(t, http.MethodGet, "/api/admin/sources", s.AdminToken, nil)
	require.Equal(t, http.StatusOK, list.Status)
	require.Contains(t, string(list.Body), `"kbc_sales"`)
	require.NotContains(t, string(list.Body), f.Token())

	// Discovery names what to register.
	disc := s.REST(t, http.MethodGet, "/api/admin/discover-tables?source=kbc_sales", s.AdminToken, nil)
	require.Equal(t, http.StatusOK, disc.Status, "%s", disc.Body)
	var d struct {
		Tables []struct {
			Bucket      string
			PrimaryKey  []string `json:"primary_key"`
			SourceTable string   `json:"source_table"`
		} `json:"tables"`
	}
	require.NoError(t, json.Unmarshal(disc.Body, &d))
	require.Len(t, d.Tables, 2)
	require.Equal(t, "in.c-crm", d.Tables[0].Bucket)
	require.Equal(t, "orders", d.Tables[0].SourceTable) // in the order Keboola lists them
	require.Equal(t, []string{"id"}, d.Tables[0].PrimaryKey)

	// Bad registrations are refused with the field at fault.
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"name": "o1", "source": "kbc_sales", "bucket": "in.c-crm", "source_table": "orders",
			"where_filters": []map[string]any{{"column": "status", "operator": "like", "values": []string{"x"}}}}, "where_filters"},
		{map[string]any{"name": "o2", "source": "kbc_sales", "source_table": "orders"}, "source_table"},
		{map[string]any{"name": "o3", "source": "kbc_sales", "bucket": "in.c-crm", "source_table": "orders", "query_mode": "remote"}, "query_mode"},
	} {
		res := s.REST(t, http.MethodPost, "/api/admin/register-table", s.AdminToken, tc.body)
		require.Equal(t, http.StatusBadRequest, res.Status, "%s", res.Body)
		detail, _ := res.Error(t)
		require.True(t, strings.HasPrefix(detail, tc.field+":"), detail)
	}

	// Register incremental, with a filter; sync; the filter reached Keboola intact.
	register(t, s, map[string]any{"name": "orders", "source_type": "keboola", "source": "kbc_sales", "bucket": "in.c-crm",
		"source_table": "orders", "sync_strategy": "incremental", "primary_key": []string{"id"}, "incremental_window_days": 2,
		"where_filters": []map[string]any{{"column": "status", "operator": "ne", "values": []string{"cancelled"}}}})
	f.MaintenanceOnNextPolls(1) // a 503 with Retry-After while the job is polled: waited out
	job := syncNow(t, s, "orders")
	require.Equal(t, agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, job.GetState(), "%v", job)
	require.EqualValues(t, 3, job.GetTables()[0].GetRows())
	exports := f.Exports()
	require.Len(t, exports, 1)
	require.Equal(t, "application/json", exports[0].ContentType)
	require.Equal(t, []kbcfake.WhereFilter{{Column: "status", Operator: "ne", Values: []string{"cancelled"}}}, exports[0].Params.WhereFilters)
	require.Empty(t, exports[0].Params.ChangedSince, "the first load is full")

	// The user sees it once granted: manifest, typed values intact, pull.
	s.Grant(t, "orders")
	man, err := s.Clients(ts.GRPC, s.UserToken).Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{})
	require.NoError(t, err)
	hash := man.GetTables()["orders"].GetHash()
	require.Len(t, hash, 32)
	require.Equal(t, "keboola", man.GetTables()["orders"].GetSourceType())
	rows := queryStrings(t, s, s.UserToken, `SELECT id, note, typeof(id), CAST(amount * 2 AS VARCHAR) FROM orders ORDER BY id`)
	require.Equal(t, [][]string{{"1", trickyNotes[0], "BIGINT", "21.00"}, {"2", trickyNotes[1], "BIGINT", "41.00"},
		{"4", trickyNotes[3], "BIGINT", "81.00"}}, rows)
	dir := t.TempDir()
	pulled := pullJSON(t, dir)
	require.Equal(t, []string{"orders"}, pulled.Downloaded)
	require.EqualValues(t, 3, localCount(t, pulled.Database, "orders"))

	// Keboola changes a row and adds one: the next sync asks for the changes
	// since the watermark minus the window, and merges them by primary key.
	now := time.Now().UTC().Truncate(time.Second)
	f.Update("in.c-crm.orders", func(tb *kbcfake.Table) {
		tb.Rows[0] = kbcfake.Row{Values: []string{"1", "shipped", "10.50", "changed"}, Changed: now}
		tb.Rows = append(tb.Rows, kbcfake.Row{Values: []string{"5", "open", "1.50", "new"}, Changed: now})
	})
	job = syncNow(t, s, "orders")
	require.Equal(t, agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, job.GetState(), "%v", job)
	exports = f.Exports()
	require.Len(t, exports, 2)
	var since int64
	_, err = fmt.Sscan(exports[1].Params.ChangedSince, &since)
	require.NoError(t, err, exports[1].Params.ChangedSince)
	require.WithinDuration(t, time.Now().Add(-2*24*time.Hour), time.Unix(since, 0), time.Minute, "watermark minus 2 days")
	require.Equal(t, [][]string{{"1", "changed"}, {"2", trickyNotes[1]}, {"4", trickyNotes[3]}, {"5", "new"}},
		queryStrings(t, s, s.UserToken, `SELECT id, note FROM orders ORDER BY id`))
	man, err = s.Clients(ts.GRPC, s.UserToken).Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{})
	require.NoError(t, err)
	hash = man.GetTables()["orders"].GetHash()

	// Nothing changed since (the window's rows are merged again, an empty
	// delta would be an empty manifest): the data stays as it is.
	job = syncNow(t, s, "orders")
	require.Equal(t, agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, job.GetState(), "%v", job)
	require.Len(t, queryStrings(t, s, s.UserToken, `SELECT id FROM orders`), 4)

	// An export job that ends in error: the sync fails with Keboola's message and
	// exceptionId, and the last good data stays served under the same hash.
	f.FailNextExport(kbcfake.JobError{Code: "storage.tableExport", Message: "Snowflake said no", ExceptionID: "exception-42"})
	job = syncNow(t, s, "orders")
	require.Equal(t, agnesv1.SyncJobState_SYNC_JOB_STATE_FAILED, job.GetState())
	require.Contains(t, job.GetError(), "Snowflake said no")
	require.Contains(t, job.GetError(), "exception-42")
	man, err = s.Clients(ts.GRPC, s.UserToken).Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{})
	require.NoError(t, err)
	require.Equal(t, hash, man.GetTables()["orders"].GetHash())
	require.Len(t, queryStrings(t, s, s.UserToken, `SELECT id FROM orders`), 4)
	reg, err := admin.Admin.ListRegistry(ctx, &agnesv1.ListRegistryRequest{})
	require.NoError(t, err)
	require.Contains(t, reg.GetTables()[0].GetLastSyncError(), "exception-42")

	// A description edited in Agnes goes back to Keboola's column metadata.
	push, err := admin.Admin.PushColumnDescription(ctx, &agnesv1.PushColumnDescriptionRequest{TableId: "orders", Column: "status", Description: "Order state"})
	require.NoError(t, err)
	require.Equal(t, "in.c-crm.orders.status", push.GetColumnId())
	require.Contains(t, f.ColumnMetadata("in.c-crm.orders", "status"), kbcfake.Metadata{Key: "KBC.description", Value: "Order state", Provider: "user"})
	res := s.REST(t, http.MethodPost, "/api/admin/registry/orders/columns/nope/description", s.AdminToken, map[string]any{"description": "x"})
	require.Equal(t, http.StatusNotFound, res.Status, "%s", res.Body)
	res = s.REST(t, http.MethodPost, "/api/admin/registry/orders/columns/bad%20name/description", s.AdminToken, map[string]any{"description": "x"})
	require.Equal(t, http.StatusBadRequest, res.Status, "%s", res.Body)
	_, err = s.Clients(ts.Connect, s.UserToken).Admin.PushColumnDescription(ctx, &agnesv1.PushColumnDescriptionRequest{TableId: "orders", Column: "status"})
	require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err))
}

// TestKeboolaSourcesSideBySide: two Keboola sources, each with its own token
// and extract; a wrong token and a table outside a token's buckets fail the
// sync with a clear message, without retries, and never leak the token.
func TestKeboolaSourcesSideBySide(t *testing.T) {
	f := kbcfake.New()
	defer f.Close()
	f.AddTable(ordersTable(time.Now().Add(-time.Hour)))
	f.AddTable(kbcfake.Table{ID: "out.c-finance.invoices", Columns: []string{"id", "total"},
		Rows: []kbcfake.Row{{Values: []string{"1", "100"}}, {Values: []string{"2", "250"}}}})
	finance := f.NewToken("out.c-finance")
	s := keboolaServer(t, f, map[string]map[string]any{
		"kbc_sales":   kbcSource(f, f.Token()),
		"kbc_finance": kbcSource(f, finance),
		"kbc_broken":  kbcSource(f, "1234-wrong-token"),
	})
	ctx := context.Background()
	admin := s.Clients(ts.Connect, s.AdminToken)

	// The start checked every source in the background, without holding it up.
	require.Eventually(t, func() bool {
		list, err := admin.Admin.ListSources(ctx, &agnesv1.ListSourcesRequest{})
		require.NoError(t, err)
		for _, src := range list.GetSources() {
			if src.GetName() == "kbc_broken" {
				return src.GetHealth() == "error"
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "the start-up check of kbc_broken")

	register(t, s, map[string]any{"name": "orders", "source": "kbc_sales", "bucket": "in.c-crm", "source_table": "orders"})
	register(t, s, map[string]any{"name": "invoices", "source": "kbc_finance", "source_table": "out.c-finance.invoices"})
	register(t, s, map[string]any{"name": "stolen", "source": "kbc_finance", "bucket": "in.c-crm", "source_table": "orders"})
	register(t, s, map[string]any{"name": "broken", "source": "kbc_broken", "bucket": "in.c-crm", "source_table": "orders"})

	job := syncNow(t, s)
	require.Equal(t, agnesv1.SyncJobState_SYNC_JOB_STATE_PARTIAL, job.GetState(), "%v", job)
	byID := map[string]*agnesv1.SyncJobTable{}
	for _, tb := range job.GetTables() {
		byID[tb.GetTableId()] = tb
	}
	require.EqualValues(t, 4, byID["orders"].GetRows())
	require.EqualValues(t, 2, byID["invoices"].GetRows())
	require.Contains(t, byID["broken"].GetError(), "Keboola rejected the token for source kbc_broken")
	require.Contains(t, byID["stolen"].GetError(), "may not read in.c-crm.orders")
	for _, tb := range job.GetTables() {
		require.NotContains(t, tb.GetError(), finance)
	}
	require.Equal(t, [][]string{{"350"}}, queryStrings(t, s, s.AdminToken, `SELECT CAST(sum(CAST(total AS INT)) AS VARCHAR) FROM invoices`))

	// The wrong token was tried once: a refused token is never retried.
	calls := 0
	for _, r := range f.Requests() {
		if r.Header.Get("X-StorageApi-Token") == "1234-wrong-token" {
			calls++
		}
	}
	before := calls
	require.Positive(t, before)
	syncNow(t, s, "broken")
	calls = 0
	for _, r := range f.Requests() {
		if r.Header.Get("X-StorageApi-Token") == "1234-wrong-token" {
			calls++
		}
	}
	require.Equal(t, 1, calls-before, "one table-detail call, no retries")

	// Health tells the sources apart.
	v, err := admin.Admin.VerifySource(ctx, &agnesv1.VerifySourceRequest{Source: "kbc_broken"})
	require.NoError(t, err)
	require.Equal(t, "error", v.GetSource().GetHealth())
	require.Contains(t, v.GetSource().GetMessage(), "Keboola rejected the token for source kbc_broken")
	list, err := admin.Admin.ListSources(ctx, &agnesv1.ListSourcesRequest{})
	require.NoError(t, err)
	health := map[string]string{}
	for _, src := range list.GetSources() {
		health[src.GetName()] = src.GetType() + "/" + src.GetHealth()
	}
	require.Equal(t, "keboola/error", health["kbc_broken"])
	require.Equal(t, "local", strings.Split(health["upload"], "/")[1])
	_, err = admin.Admin.VerifySource(ctx, &agnesv1.VerifySourceRequest{Source: "nope"})
	require.Equal(t, connect.CodeNotFound, connect.CodeOf(err))

	// Discovery with a refused token says so.
	res := s.REST(t, http.MethodGet, "/api/admin/discover-tables?source=kbc_broken", s.AdminToken, nil)
	require.Equal(t, http.StatusConflict, res.Status, "%s", res.Body)
	detail, _ := res.Error(t)
	require.Contains(t, detail, "Keboola rejected the token")
	res = s.REST(t, http.MethodGet, "/api/admin/discover-tables?source=kbc_finance&dataset=out.c-finance", s.AdminToken, nil)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	require.Contains(t, string(res.Body), `"invoices"`)
}
