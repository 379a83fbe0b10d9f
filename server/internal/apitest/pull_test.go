package apitest

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/stretchr/testify/require"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/app"
	"github.com/agnesdata/agnes/server/internal/restjson"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

type pullResult struct {
	Downloaded []string `json:"downloaded"`
	Removed    []string `json:"removed"`
	Unchanged  int      `json:"unchanged"`
	Tables     int      `json:"tables"`
	Database   string   `json:"database"`
}

func pullJSON(t *testing.T, dir string) pullResult {
	t.Helper()
	out, stderr, code := agnes(t, "", "pull", "--dir", dir, "--json")
	require.Equal(t, 0, code, stderr)
	var r pullResult
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	return r
}

func localCount(t *testing.T, dbPath, table string) int64 {
	t.Helper()
	c, err := duckdb.NewConnector(dbPath+"?access_mode=READ_ONLY", nil)
	require.NoError(t, err)
	db := sql.OpenDB(c)
	defer db.Close()
	var n int64
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM "`+table+`"`).Scan(&n))
	return n
}

func TestManifestDownloadAndPull(t *testing.T) {
	s := shop(t)
	t.Setenv("AGNES_CONFIG_DIR", t.TempDir())
	t.Setenv("AGNES_SERVER", s.URL)
	t.Setenv("AGNES_TOKEN", s.UserToken)
	ctx := context.Background()

	// The manifest lists exactly the granted table, with its content hash.
	man, err := s.Clients(ts.GRPC, s.UserToken).Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{})
	require.NoError(t, err)
	require.Len(t, man.GetTables(), 1)
	orders := man.GetTables()["orders"]
	require.Len(t, orders.GetHash(), 32)
	require.EqualValues(t, 100, orders.GetRows())
	all, err := s.Clients(ts.Connect, s.AdminToken).Sync.GetManifest(ctx, &agnesv1.GetManifestRequest{})
	require.NoError(t, err)
	require.Len(t, all.GetTables(), 3, "admins see every table")

	// Plain HTTP download: RBAC first, ETag = the manifest hash, 304 and Range.
	require.Equal(t, http.StatusForbidden, s.REST(t, http.MethodGet, "/api/data/customers/download", s.UserToken, nil).Status)
	require.Equal(t, http.StatusUnauthorized, s.REST(t, http.MethodGet, "/api/data/orders/download", "", nil).Status)
	require.Equal(t, http.StatusNotFound, s.REST(t, http.MethodGet, "/api/data/..%2Fstate/download", s.AdminToken, nil).Status)
	res := s.REST(t, http.MethodGet, "/api/data/orders/download", s.UserToken, nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Equal(t, `"`+orders.GetHash()+`"`, res.Header.Get("Etag"))
	require.EqualValues(t, orders.GetSizeBytes(), len(res.Body))
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/data/orders/download", nil)
	req.Header.Set("Authorization", "Bearer "+s.UserToken)
	req.Header.Set("If-None-Match", `"`+orders.GetHash()+`"`)
	r304, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	r304.Body.Close()
	require.Equal(t, http.StatusNotModified, r304.StatusCode)
	req.Header.Del("If-None-Match")
	req.Header.Set("Range", "bytes=4-9")
	r206, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	r206.Body.Close()
	require.Equal(t, http.StatusPartialContent, r206.StatusCode)
	require.EqualValues(t, 6, r206.ContentLength)

	// The gRPC stream carries the same bytes.
	stream, err := s.Clients(ts.GRPC, s.UserToken).Sync.DownloadTable(ctx, &agnesv1.DownloadTableRequest{TableId: "orders"})
	require.NoError(t, err)
	var got []byte
	for stream.Receive() {
		if h := stream.Msg().GetHash(); h != "" {
			require.Equal(t, orders.GetHash(), h)
		}
		got = append(got, stream.Msg().GetData()...)
	}
	require.NoError(t, stream.Err())
	require.Equal(t, res.Body, got)

	// agnes pull: exactly the granted table, queryable locally.
	dir := t.TempDir()
	first := pullJSON(t, dir)
	require.Equal(t, []string{"orders"}, first.Downloaded)
	require.EqualValues(t, 100, localCount(t, first.Database, "orders"))
	// Readable by the user only: the data was granted to this account.
	require.NoError(t, filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		require.NoError(t, err)
		if path != dir {
			require.Zero(t, fi.Mode().Perm()&0o077, "%s is %v", path, fi.Mode().Perm())
		}
		return nil
	}))

	// Nothing changed: nothing downloaded.
	again := pullJSON(t, dir)
	require.Empty(t, again.Downloaded)
	require.Equal(t, 1, again.Unchanged)

	// The source changes; a second grant appears; the next pull fetches only those.
	s.AddTable(t, "shop", "orders", `SELECT i AS id, 'web' AS channel FROM range(150) t(i)`)
	s.Rebuild(t)
	s.Grant(t, "accounts")
	third := pullJSON(t, dir)
	require.ElementsMatch(t, []string{"orders", "accounts"}, third.Downloaded)
	require.EqualValues(t, 150, localCount(t, third.Database, "orders"))
	require.EqualValues(t, 5, localCount(t, third.Database, "accounts"))

	// An interrupted download resumes from its .part file.
	s.AddTable(t, "shop", "orders", `SELECT i AS id, 'app' AS channel FROM range(5000) t(i)`)
	s.Rebuild(t)
	full := s.REST(t, http.MethodGet, "/api/data/orders/download", s.UserToken, nil).Body
	part := filepath.Join(dir, "parquet", "orders.parquet.part")
	require.NoError(t, os.WriteFile(part, full[:len(full)/2], 0o644))
	fourth := pullJSON(t, dir)
	require.Equal(t, []string{"orders"}, fourth.Downloaded)
	require.EqualValues(t, 5000, localCount(t, fourth.Database, "orders"))
	_, err = os.Stat(part)
	require.True(t, os.IsNotExist(err), "the .part file became the table")

	// Grants revoked: the local copy goes away.
	grants, err := s.Clients(ts.Connect, s.AdminToken).Admin.ListGrants(ctx, &agnesv1.ListGrantsRequest{})
	require.NoError(t, err)
	for _, g := range grants.GetGrants() {
		if g.GetResourceId() == "accounts" {
			_, err := s.Clients(ts.Connect, s.AdminToken).Admin.DeleteGrant(ctx, &agnesv1.DeleteGrantRequest{GrantId: g.GetId()})
			require.NoError(t, err)
		}
	}
	fifth := pullJSON(t, dir)
	require.Equal(t, []string{"accounts"}, fifth.Removed)
	_, err = os.Stat(filepath.Join(dir, "parquet", "accounts.parquet"))
	require.True(t, os.IsNotExist(err))
}

// TestRESTManifestMatchesTheRPC: the REST manifest is written by its own handler
// for speed; it must say exactly what the RPC says, in the REST JSON shape.
func TestRESTManifestMatchesTheRPC(t *testing.T) {
	s := shop(t)
	s.Grant(t, "accounts")
	res := s.REST(t, http.MethodGet, "/api/sync/manifest", s.UserToken, nil)
	require.Equal(t, http.StatusOK, res.Status)
	var rest map[string]any
	res.JSON(t, &rest)
	require.Contains(t, rest, "server_time")
	delete(rest, "server_time")

	man, err := s.Clients(ts.Connect, s.UserToken).Sync.GetManifest(context.Background(), &agnesv1.GetManifestRequest{})
	require.NoError(t, err)
	man.ServerTime = nil
	raw, err := restjson.New(app.Services()).Marshal(man)
	require.NoError(t, err)
	var rpc map[string]any
	require.NoError(t, json.Unmarshal(raw, &rpc))
	delete(rpc, "server_time")
	require.Equal(t, rpc, rest)
	require.Len(t, rest["tables"], 2)
	orders := rest["tables"].(map[string]any)["orders"].(map[string]any)
	require.Equal(t, float64(100), orders["rows"], "64-bit integers are numbers")

	require.Equal(t, http.StatusUnauthorized, s.REST(t, http.MethodGet, "/api/sync/manifest", "", nil).Status)
}
