package apitest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

func csvRows(n int, label string) []byte {
	var b strings.Builder
	b.WriteString("id,region,amount\n")
	for i := range n {
		fmt.Fprintf(&b, "%d,%s,%d.5\n", i, label, i*3)
	}
	return []byte(b.String())
}

// watch follows a sync job to its end over a server stream and returns every state seen.
func watch(t *testing.T, c *ts.Clients, jobID string) []*agnesv1.SyncJob {
	t.Helper()
	stream, err := c.Sync.WatchSyncJob(context.Background(), &agnesv1.WatchSyncJobRequest{JobId: jobID})
	require.NoError(t, err)
	var states []*agnesv1.SyncJob
	for stream.Receive() {
		states = append(states, stream.Msg().GetJob())
	}
	require.NoError(t, stream.Err())
	require.NotEmpty(t, states)
	return states
}

// TestDataReachesAnalysts is the whole loop through the public API: upload and
// register → sync (watched) → no grant, no data → grant → pull exactly that →
// the source changes → the next pull fetches only what changed.
func TestDataReachesAnalysts(t *testing.T) {
	s := ts.New(t)
	ctx := context.Background()
	admin := s.Clients(ts.Connect, s.AdminToken)
	t.Setenv("AGNES_CONFIG_DIR", t.TempDir())
	t.Setenv("AGNES_SERVER", s.URL)
	t.Setenv("AGNES_TOKEN", s.UserToken)

	// Admin uploads a CSV: it is registered and synced before the answer.
	up := s.Upload(t, s.AdminToken, "Sales 2026.csv", csvRows(300, "emea"), map[string]string{"description": "Sales by region"})
	require.Equal(t, http.StatusCreated, up.Status, "%s", up.Body)
	var uploaded struct {
		ID   string `json:"id"`
		Rows int64  `json:"rows"`
	}
	up.JSON(t, &uploaded)
	require.Equal(t, "sales_2026", uploaded.ID)
	require.EqualValues(t, 300, uploaded.Rows)

	// Admin registers a demo table and syncs it, watching per-table progress.
	reg := s.REST(t, http.MethodPost, "/api/admin/register-table", s.AdminToken,
		map[string]any{"name": "orders", "source_type": "demo", "source_table": "orders", "description": "Demo orders"})
	require.Equal(t, http.StatusCreated, reg.Status, "%s", reg.Body)
	trig, err := admin.Sync.TriggerSync(ctx, &agnesv1.TriggerSyncRequest{Tables: []string{"orders"}})
	require.NoError(t, err)
	states := watch(t, admin, trig.GetJobId())
	final := states[len(states)-1]
	require.Equal(t, agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, final.GetState(), "%v", final)
	require.EqualValues(t, 5000, final.GetTables()[0].GetRows())
	require.NotZero(t, final.GetGeneration())

	// The analyst has no grant: nothing in the manifest, the catalog, or a query.
	user := s.Clients(ts.GRPC, s.UserToken)
	man, err := user.Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{})
	require.NoError(t, err)
	require.Empty(t, man.GetTables())
	cat, err := user.Catalog.ListCatalogTables(ctx, &agnesv1.ListCatalogTablesRequest{})
	require.NoError(t, err)
	require.Empty(t, cat.GetTables())
	for _, table := range []string{"orders", "sales_2026"} {
		_, err = user.Query.Query(ctx, &agnesv1.QueryRequest{Sql: "SELECT count(*) FROM " + table})
		require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err))
		_, err = user.Catalog.GetTableProfile(ctx, &agnesv1.GetTableProfileRequest{TableId: table})
		require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err))
	}

	// Admin grants orders to a group the analyst is in.
	s.Grant(t, "orders")
	cat, err = user.Catalog.ListCatalogTables(ctx, &agnesv1.ListCatalogTablesRequest{})
	require.NoError(t, err)
	require.Len(t, cat.GetTables(), 1)
	require.Equal(t, "Demo orders", cat.GetTables()[0].GetDescription())
	prof, err := user.Catalog.GetTableProfile(ctx, &agnesv1.GetTableProfileRequest{TableId: "orders"})
	require.NoError(t, err)
	require.EqualValues(t, 5000, prof.GetProfile().GetRowCount())
	require.NotEmpty(t, prof.GetProfile().GetColumns())

	dir := t.TempDir()
	first := pullJSON(t, dir)
	require.Equal(t, []string{"orders"}, first.Downloaded)
	require.EqualValues(t, 5000, localCount(t, first.Database, "orders"))

	// A second grant: the next pull fetches only the new table.
	s.Grant(t, "sales_2026")
	second := pullJSON(t, dir)
	require.Equal(t, []string{"sales_2026"}, second.Downloaded)
	require.Equal(t, 1, second.Unchanged)

	// The source changes (a new upload replaces the data): only that table moves.
	re := s.Upload(t, s.AdminToken, "sales.csv", csvRows(450, "apac"), map[string]string{"name": "Sales 2026", "replace": "true"})
	require.Equal(t, http.StatusCreated, re.Status, "%s", re.Body)
	third := pullJSON(t, dir)
	require.Equal(t, []string{"sales_2026"}, third.Downloaded)
	require.EqualValues(t, 450, localCount(t, third.Database, "sales_2026"))
	require.EqualValues(t, 5000, localCount(t, third.Database, "orders"))
	res, err := user.Query.Query(ctx, &agnesv1.QueryRequest{Sql: "SELECT DISTINCT region FROM sales_2026"})
	require.NoError(t, err)
	require.Equal(t, "apac", res.GetRows()[0].GetValues()[0].GetStringValue())
}

func TestUploadRejectsBadFiles(t *testing.T) {
	s := ts.New(t, ts.WithConfig(func(c *configT) { c.MaxUploadBytes = 64 << 10 }))
	bad := []byte("id,name\n1,ann\n2,bob,extra\n3,cy\n")
	res := s.Upload(t, s.AdminToken, "people.csv", bad, nil)
	require.Equal(t, http.StatusBadRequest, res.Status, "%s", res.Body)
	detail, _ := res.Error(t)
	require.Contains(t, detail, "line 3")

	res = s.Upload(t, s.AdminToken, "big.csv", csvRows(10000, "x"), nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, res.Status, "%s", res.Body)

	res = s.Upload(t, s.UserToken, "people.csv", []byte("id\n1\n"), nil)
	require.Equal(t, http.StatusForbidden, res.Status)

	// Nothing was left behind: no registry row, no upload file.
	reg, err := s.Clients(ts.Connect, s.AdminToken).Admin.ListRegistry(context.Background(), &agnesv1.ListRegistryRequest{})
	require.NoError(t, err)
	require.Empty(t, reg.GetTables())
	entries, _ := os.ReadDir(filepath.Join(s.DataDir, "uploads"))
	require.Empty(t, entries)

	// Duplicates need replace=true.
	require.Equal(t, http.StatusCreated, s.Upload(t, s.AdminToken, "people.csv", []byte("id\n1\n"), nil).Status)
	require.Equal(t, http.StatusConflict, s.Upload(t, s.AdminToken, "people.csv", []byte("id\n1\n"), nil).Status)
}

func TestRegistryValidation(t *testing.T) {
	s := ts.New(t)
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"name": "", "source_type": "demo"}, "name"},
		{map[string]any{"name": "9lives", "source_type": "demo"}, "name"},
		{map[string]any{"name": "x", "source_type": "oracle"}, "source_type"},
		{map[string]any{"name": "x", "source_type": "demo", "sync_strategy": "sometimes"}, "sync_strategy"},
		{map[string]any{"name": "x", "source_type": "demo", "sync_strategy": "partitioned"}, "partition_by"},
		{map[string]any{"name": "x", "source_type": "demo", "sync_schedule": "hourly"}, "sync_schedule"},
		{map[string]any{"name": "x", "source_type": "demo", "query_mode": "psychic"}, "query_mode"},
	} {
		res := s.REST(t, http.MethodPost, "/api/admin/register-table", s.AdminToken, c.body)
		require.Equal(t, http.StatusBadRequest, res.Status, "%v: %s", c.body, res.Body)
		detail, _ := res.Error(t)
		require.True(t, strings.HasPrefix(detail, c.field+":"), "%q names %s", detail, c.field)
	}
	ok := map[string]any{"name": "Customers", "source_type": "demo", "source_table": "customers", "sync_schedule": "every 6h"}
	require.Equal(t, http.StatusCreated, s.REST(t, http.MethodPost, "/api/admin/register-table", s.AdminToken, ok).Status)
	require.Equal(t, http.StatusConflict, s.REST(t, http.MethodPost, "/api/admin/register-table", s.AdminToken, ok).Status)
	upd := s.REST(t, http.MethodPut, "/api/admin/registry/customers", s.AdminToken, map[string]any{"description": "People who buy"})
	require.Equal(t, http.StatusOK, upd.Status, "%s", upd.Body)
	var changed struct{ Updated []string }
	upd.JSON(t, &changed)
	require.Equal(t, []string{"description"}, changed.Updated)
	require.Equal(t, http.StatusNoContent, s.REST(t, http.MethodDelete, "/api/admin/registry/customers", s.AdminToken, nil).Status)
	require.Equal(t, http.StatusNotFound, s.REST(t, http.MethodDelete, "/api/admin/registry/customers", s.AdminToken, nil).Status)
}

// TestPartitionedTablesAreDistributedByPart: a partitioned table is a folder of
// Parquet files; the manifest lists each part with its hash, each part downloads on
// its own, and a pull mirrors them all into one local view.
func TestPartitionedTablesAreDistributedByPart(t *testing.T) {
	s := ts.New(t)
	ctx := context.Background()
	admin := s.Clients(ts.Connect, s.AdminToken)
	reg := s.REST(t, http.MethodPost, "/api/admin/register-table", s.AdminToken, map[string]any{
		"name": "orders", "source_type": "demo", "source_table": "orders",
		"sync_strategy": "partitioned", "partition_by": "ordered_at"})
	require.Equal(t, http.StatusCreated, reg.Status, "%s", reg.Body)
	trig, err := admin.Sync.TriggerSync(ctx, &agnesv1.TriggerSyncRequest{Tables: []string{"orders"}})
	require.NoError(t, err)
	states := watch(t, admin, trig.GetJobId())
	require.Equal(t, agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, states[len(states)-1].GetState())

	s.Grant(t, "orders")
	man, err := s.Clients(ts.GRPC, s.UserToken).Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{})
	require.NoError(t, err)
	parts := man.GetTables()["orders"].GetParts()
	require.Len(t, parts, 18)
	require.Len(t, parts[0].GetHash(), 32)

	whole := s.REST(t, http.MethodGet, "/api/data/orders/download", s.UserToken, nil)
	require.Equal(t, http.StatusBadRequest, whole.Status, "a partitioned table downloads part by part")
	one := s.REST(t, http.MethodGet, "/api/data/orders/download?part="+parts[3].GetName(), s.UserToken, nil)
	require.Equal(t, http.StatusOK, one.Status)
	require.Equal(t, `"`+parts[3].GetHash()+`"`, one.Header.Get("Etag"))
	require.EqualValues(t, parts[3].GetSizeBytes(), len(one.Body))
	require.Equal(t, http.StatusNotFound, s.REST(t, http.MethodGet, "/api/data/orders/download?part=../../x", s.UserToken, nil).Status)

	t.Setenv("AGNES_CONFIG_DIR", t.TempDir())
	t.Setenv("AGNES_SERVER", s.URL)
	t.Setenv("AGNES_TOKEN", s.UserToken)
	dir := t.TempDir()
	res := pullJSON(t, dir)
	require.Equal(t, []string{"orders"}, res.Downloaded)
	require.EqualValues(t, 5000, localCount(t, res.Database, "orders"))
	again := pullJSON(t, dir)
	require.Empty(t, again.Downloaded)
}
