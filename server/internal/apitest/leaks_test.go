package apitest

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// A user learns nothing about tables they may not read: an unknown table and an
// ungranted one get the same 403 with the same message.
func TestUnknownAndUngrantedTablesLookAlike(t *testing.T) {
	s := shop(t)
	for _, p := range []ts.Protocol{ts.Connect, ts.GRPC} {
		c := s.Clients(p, s.UserToken)
		_, errUngranted := c.Query.Query(context.Background(), &agnesv1.QueryRequest{Sql: "SELECT * FROM customers"})
		_, errUnknown := c.Query.Query(context.Background(), &agnesv1.QueryRequest{Sql: "SELECT * FROM payroll"})
		require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(errUngranted))
		require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(errUnknown))
		require.Equal(t, strings.ReplaceAll(errUngranted.Error(), "customers", "T"), strings.ReplaceAll(errUnknown.Error(), "payroll", "T"))
	}
	res := s.REST(t, http.MethodPost, "/api/query", s.UserToken, `{"sql": "SELECT * FROM payroll"}`)
	require.Equal(t, http.StatusForbidden, res.Status)
	// An admin, who may see every table, gets the precise answer.
	_, err := s.Clients(ts.Connect, s.AdminToken).Query.Query(context.Background(), &agnesv1.QueryRequest{Sql: "SELECT * FROM payroll"})
	require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
	require.ErrorContains(t, err, "unknown table 'payroll'")
}

// Sync status shows a user only the tables they may read, and no one's email.
func TestSyncStatusIsFilteredByGrants(t *testing.T) {
	s := ts.New(t)
	ctx := context.Background()
	for _, name := range []string{"visible_t", "hidden_t"} {
		res := s.Upload(t, s.AdminToken, name+".csv", []byte("id,v\n1,a\n2,b\n"), nil)
		require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	}
	s.Grant(t, "visible_t")
	admin := s.Clients(ts.Connect, s.AdminToken)
	st, err := admin.Sync.GetSyncStatus(ctx, &agnesv1.GetSyncStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, "admin@example.com", st.GetLastJob().GetTriggeredBy(), "admins see everything")
	require.Equal(t, "hidden_t", st.GetLastJob().GetTables()[0].GetTableId())

	st, err = s.Clients(ts.Connect, s.UserToken).Sync.GetSyncStatus(ctx, &agnesv1.GetSyncStatusRequest{})
	require.NoError(t, err)
	require.Empty(t, st.GetLastJob().GetTriggeredBy(), "no emails for users")
	require.Empty(t, st.GetLastJob().GetTables(), "only granted tables")
	raw := s.REST(t, http.MethodGet, "/api/sync/status", s.UserToken, nil)
	require.NotContains(t, string(raw.Body), "admin@example.com")
	require.NotContains(t, string(raw.Body), "hidden_t")
}

// A metric's definition names the tables it reads: a user sees it only with a
// grant on each.
func TestMetricsAreFilteredByGrants(t *testing.T) {
	s := shop(t)
	admin := s.Clients(ts.Connect, s.AdminToken)
	ctx := context.Background()
	for _, m := range []*agnesv1.Metric{
		{Name: "revenue", Category: "sales", Sql: "SELECT sum(amount) FROM orders", TableName: "orders"},
		{Name: "churn", Category: "crm", Sql: "SELECT count(*) FROM customers", TableName: "customers"},
		{Name: "mixed", Category: "sales", Sql: "SELECT 1", Tables: []string{"orders", "customers"}},
	} {
		_, err := admin.Catalog.UpsertMetric(ctx, &agnesv1.UpsertMetricRequest{Metric: m})
		require.NoError(t, err)
	}
	user := s.Clients(ts.Connect, s.UserToken)
	list, err := user.Catalog.ListMetrics(ctx, &agnesv1.ListMetricsRequest{})
	require.NoError(t, err)
	var names []string
	for _, m := range list.GetMetrics() {
		names = append(names, m.GetName())
	}
	require.Equal(t, []string{"revenue"}, names)
	_, err = user.Catalog.GetMetric(ctx, &agnesv1.GetMetricRequest{MetricId: "crm/churn"})
	require.Equal(t, connect.CodeNotFound, connect.CodeOf(err), "as if it did not exist")
	all, err := admin.Catalog.ListMetrics(ctx, &agnesv1.ListMetricsRequest{})
	require.NoError(t, err)
	require.Len(t, all.GetMetrics(), 3)
}

// An upload table's source_table can only name a file of the uploads folder.
func TestUploadSourceTableIsConfined(t *testing.T) {
	s := ts.New(t)
	for _, st := range []string{"../state/system.duckdb", "/etc/passwd", "sub/dir.csv", "..", "x.csv/../../y.csv"} {
		res := s.REST(t, http.MethodPost, "/api/admin/register-table", s.AdminToken,
			map[string]any{"name": "sneaky", "source_type": "upload", "source_table": st})
		require.Equal(t, http.StatusBadRequest, res.Status, "%s: %s", st, res.Body)
		detail, _ := res.Error(t)
		require.Contains(t, detail, "source_table")
	}
	res := s.REST(t, http.MethodPost, "/api/admin/register-table", s.AdminToken,
		map[string]any{"name": "fine", "source_type": "upload", "source_table": "fine.csv"})
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
}
