package apitest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// requestLines returns the access-log lines of a path.
func (b *syncBuffer) requestLines(t *testing.T, path string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var line map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line))
		if line["msg"] == "request" && line["path"] == path {
			out = append(out, line)
		}
	}
	return out
}

// The access log names the route or RPC and its real outcome, for plain routes
// and REST mirror calls alike (a refused manifest call was once logged code=ok).
func TestAccessLogRecordsTheOutcome(t *testing.T) {
	logs := &syncBuffer{}
	s := ts.New(t, ts.WithLog(logs))
	cases := []struct {
		method, path, token string
		status              int
		rpc, code           string
	}{
		{http.MethodGet, "/api/sync/manifest", "", http.StatusUnauthorized, "agnes.v1.SyncService/GetManifest", "unauthenticated"},
		{http.MethodGet, "/api/sync/manifest", s.UserToken, http.StatusOK, "agnes.v1.SyncService/GetManifest", "ok"},
		{http.MethodGet, "/api/data/secret/download", s.UserToken, http.StatusForbidden, "data.download", "permission_denied"},
		{http.MethodGet, "/api/data/nothing/download", s.AdminToken, http.StatusNotFound, "data.download", "not_found"},
		{http.MethodGet, "/auth/me", "", http.StatusUnauthorized, "agnes.v1.AuthService/GetMe", "unauthenticated"},
		{http.MethodGet, "/api/users", s.UserToken, http.StatusForbidden, "agnes.v1.AdminService/ListUsers", "permission_denied"},
		{http.MethodGet, "/api/users", s.AdminToken, http.StatusOK, "agnes.v1.AdminService/ListUsers", "ok"},
	}
	for _, c := range cases {
		res := s.REST(t, c.method, c.path, c.token, nil)
		require.Equal(t, c.status, res.Status, "%s %s", c.method, c.path)
	}
	for _, c := range cases {
		var found bool
		for _, line := range logs.requestLines(t, c.path) {
			if line["status"] == float64(c.status) {
				require.Equal(t, c.rpc, line["rpc"], c.path)
				require.Equal(t, c.code, line["code"], c.path)
				found = true
			}
		}
		require.True(t, found, "no access-log line for %s %s with status %d", c.method, c.path, c.status)
	}
}
