package apitest

import (
	"context"
	"net/http"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

func TestMetricsCRUDAndYAMLImport(t *testing.T) {
	s := ts.New(t)
	admin := s.Clients(ts.Connect, s.AdminToken)
	ctx := context.Background()

	res := s.REST(t, http.MethodPost, "/api/admin/metrics", s.AdminToken, map[string]any{
		"name": "revenue", "category": "finance", "sql": "SELECT sum(total) FROM orders", "unit": "EUR"})
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	var m struct{ ID, Type, Grain, Source string }
	res.JSON(t, &m)
	require.Equal(t, "finance/revenue", m.ID)
	require.Equal(t, "sum", m.Type)
	require.Equal(t, "manual", m.Source)

	imported, err := admin.Catalog.ImportMetrics(ctx, &agnesv1.ImportMetricsRequest{Yaml: `
- name: active_customers
  category: growth
  sql: SELECT count(DISTINCT customer_id) FROM orders
  sql_by_bigquery: SELECT COUNT(DISTINCT customer_id) FROM ds.orders
  dimensions: [country]
- name: aov
  category: finance
  sql: SELECT avg(total) FROM orders
`})
	require.NoError(t, err)
	require.EqualValues(t, 2, imported.GetCount())

	// Any signed-in user reads metrics; ids contain a slash.
	got := s.REST(t, http.MethodGet, "/api/metrics/growth/active_customers", s.UserToken, nil)
	require.Equal(t, http.StatusOK, got.Status, "%s", got.Body)
	var gm struct {
		SQLVariants map[string]string `json:"sql_variants"`
		Dimensions  []string          `json:"dimensions"`
	}
	got.JSON(t, &gm)
	require.Contains(t, gm.SQLVariants["bigquery"], "COUNT(DISTINCT")
	require.Equal(t, []string{"country"}, gm.Dimensions)
	var list struct{ Count int }
	s.REST(t, http.MethodGet, "/api/metrics?category=finance", s.UserToken, nil).JSON(t, &list)
	require.Equal(t, 2, list.Count)

	for _, bad := range []string{"not: [valid", "- category: x\n  sql: SELECT 1\n", "- name: x\n  category: y\n  sql: s\n  colour: red\n"} {
		_, err := admin.Catalog.ImportMetrics(ctx, &agnesv1.ImportMetricsRequest{Yaml: bad})
		require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), bad)
	}
	require.Equal(t, http.StatusForbidden, s.REST(t, http.MethodDelete, "/api/admin/metrics/finance/aov", s.UserToken, nil).Status)
	require.Equal(t, http.StatusNoContent, s.REST(t, http.MethodDelete, "/api/admin/metrics/finance/aov", s.AdminToken, nil).Status)
	require.Equal(t, http.StatusNotFound, s.REST(t, http.MethodGet, "/api/metrics/finance/aov", s.UserToken, nil).Status)
}

func TestSubscriptionsShapeTheManifest(t *testing.T) {
	s := shop(t)
	s.Grant(t, "customers")
	user := s.Clients(ts.Connect, s.UserToken)
	ctx := context.Background()
	tables := func() []string {
		man, err := user.Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{})
		require.NoError(t, err)
		var out []string
		for id := range man.GetTables() {
			out = append(out, id)
		}
		return out
	}
	require.ElementsMatch(t, []string{"orders", "customers"}, tables())

	// Disabling one table drops it; asking for one never granted is refused per entry.
	res, err := user.Sync.UpdateSyncSettings(ctx, &agnesv1.UpdateSyncSettingsRequest{Datasets: map[string]bool{"customers": false, "accounts": true}})
	require.NoError(t, err)
	require.Equal(t, "no permission", res.GetUpdated()["accounts"].GetError())
	require.ElementsMatch(t, []string{"orders"}, tables())

	// "selected": only what is explicitly enabled.
	_, err = user.Sync.UpdateTableSubscriptions(ctx, &agnesv1.UpdateTableSubscriptionsRequest{TableMode: "selected", Tables: map[string]bool{"customers": true}})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"customers"}, tables())

	// PUT /api/settings/dataset needs a grant on the table.
	require.Equal(t, http.StatusForbidden, s.REST(t, http.MethodPut, "/api/settings/dataset", s.UserToken,
		map[string]any{"dataset": "accounts", "enabled": true}).Status)
	require.Equal(t, http.StatusOK, s.REST(t, http.MethodPut, "/api/settings/dataset", s.UserToken,
		map[string]any{"dataset": "orders", "enabled": true}).Status)
	require.ElementsMatch(t, []string{"customers", "orders"}, tables())
	var settings struct {
		TableMode    string `json:"table_mode"`
		SyncSettings []struct {
			Dataset string `json:"dataset"`
		} `json:"sync_settings"`
	}
	s.REST(t, http.MethodGet, "/api/settings", s.UserToken, nil).JSON(t, &settings)
	require.Equal(t, "selected", settings.TableMode)
	require.Len(t, settings.SyncSettings, 2)
}

func TestProfileRefreshAndDescribe(t *testing.T) {
	s := shop(t)
	ctx := context.Background()
	admin := s.Clients(ts.Connect, s.AdminToken)
	_, err := admin.Catalog.GetTableProfile(ctx, &agnesv1.GetTableProfileRequest{TableId: "orders"})
	require.Equal(t, connect.CodeNotFound, connect.CodeOf(err), "test tables are not synced, so not profiled yet")
	ref, err := admin.Catalog.RefreshTableProfile(ctx, &agnesv1.RefreshTableProfileRequest{TableId: "orders"})
	require.NoError(t, err)
	require.EqualValues(t, 5, ref.GetColumns())
	_, err = s.Clients(ts.Connect, s.UserToken).Catalog.RefreshTableProfile(ctx, &agnesv1.RefreshTableProfileRequest{TableId: "orders"})
	require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err), "refresh is an admin action")

	t.Setenv("AGNES_CONFIG_DIR", t.TempDir())
	t.Setenv("AGNES_SERVER", s.URL)
	t.Setenv("AGNES_TOKEN", s.UserToken)
	out, stderr, code := agnes(t, "", "describe", "orders")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "100 rows")
	require.Regexp(t, `(?m)^channel\s+VARCHAR\s+15\.0\s+~1\s+web\s+web\s+web \(85\)`, out)
	out, _, code = agnes(t, "", "catalog")
	require.Equal(t, 0, code)
	require.Regexp(t, `(?m)^orders\s+100\s`, out)
	require.NotContains(t, out, "customers")
}
