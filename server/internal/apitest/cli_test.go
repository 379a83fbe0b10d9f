package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/client/cli"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// agnes runs the CLI in-process with a private config dir and returns stdout.
func agnes(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), "test", args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func TestCLILoginWhoamiAndAdmin(t *testing.T) {
	s := ts.New(t)
	cfgDir := t.TempDir()
	t.Setenv("AGNES_CONFIG_DIR", cfgDir)
	t.Setenv("AGNES_SERVER", "")
	t.Setenv("AGNES_TOKEN", "")

	_, stderr, code := agnes(t, "", "whoami", "--server", s.URL)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "agnes login")

	out, stderr, code := agnes(t, "password123\n", "login", "--server", s.URL, "--email", "admin@example.com", "--password-stdin")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "Signed in to "+s.URL+" as admin@example.com")
	info, err := os.Stat(filepath.Join(cfgDir, "config.json"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the token file is private")

	out, _, code = agnes(t, "", "whoami", "--json")
	require.Equal(t, 0, code)
	var me struct {
		Email     string `json:"email"`
		IsAdmin   bool   `json:"is_admin"`
		TokenType string `json:"token_type"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &me))
	require.Equal(t, "admin@example.com", me.Email)
	require.True(t, me.IsAdmin)
	require.Equal(t, "pat", me.TokenType, "login stores a personal access token, not a 24 h session")

	for _, args := range [][]string{
		{"admin", "users", "create", "dana@example.com", "--name", "Dana", "--password", "password123"},
		{"admin", "groups", "create", "sales", "--description", "Sales team"},
		{"admin", "groups", "add-member", "sales", "dana@example.com"},
		{"admin", "grants", "create", "sales", "orders"},
	} {
		_, stderr, code := agnes(t, "", args...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
	}
	out, _, code = agnes(t, "", "admin", "users", "list")
	require.Equal(t, 0, code)
	require.Regexp(t, `(?m)^dana@example.com\s+Dana\s+no\s+yes\s+Everyone,sales`, out)

	out, _, code = agnes(t, "", "admin", "grants", "list", "--json")
	require.Equal(t, 0, code)
	var grants []struct {
		GroupName  string `json:"group_name"`
		ResourceID string `json:"resource_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &grants))
	require.Equal(t, "sales", grants[0].GroupName)
	require.Equal(t, "orders", grants[0].ResourceID)

	_, stderr, code = agnes(t, "", "admin", "groups", "create", "sales")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "already exists")

	// AGNES_TOKEN wins over the stored token: Dana is no admin.
	out, _, _ = agnes(t, "password123\n", "login", "--server", s.URL, "--email", "dana@example.com", "--password-stdin")
	require.Contains(t, out, "dana@example.com")
	_, stderr, code = agnes(t, "", "admin", "users", "list")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "permission denied")
	t.Setenv("AGNES_TOKEN", s.AdminToken)
	_, _, code = agnes(t, "", "admin", "users", "list")
	require.Equal(t, 0, code)
	t.Setenv("AGNES_TOKEN", "")

	// Logout revokes Dana's CLI token on the server.
	raw, err := os.ReadFile(filepath.Join(cfgDir, "config.json"))
	require.NoError(t, err)
	var saved struct{ Token string }
	require.NoError(t, json.Unmarshal(raw, &saved))
	_, _, code = agnes(t, "", "logout")
	require.Equal(t, 0, code)
	require.Equal(t, "unauthenticated", getMeCode(t, s, ts.Connect, saved.Token))
}

func TestCLIQuery(t *testing.T) {
	s := shop(t)
	t.Setenv("AGNES_CONFIG_DIR", t.TempDir())
	t.Setenv("AGNES_SERVER", s.URL)
	t.Setenv("AGNES_TOKEN", s.UserToken)

	out, stderr, code := agnes(t, "", "query", "SELECT id, channel FROM orders WHERE id < 3 ORDER BY id")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "id  channel\n--  -------\n0   \n1   web\n2   web\n", out)
	require.Regexp(t, `^\(3 rows, [0-9.]+ s\)\n$`, stderr)

	out, _, code = agnes(t, "", "query", "--format", "csv", "SELECT id, 'a,b' AS s FROM orders ORDER BY id LIMIT 2")
	require.Equal(t, 0, code)
	require.Equal(t, "id,s\n0,\"a,b\"\n1,\"a,b\"\n", out)

	out, _, code = agnes(t, "", "query", "--format", "json", "SELECT id, channel, day FROM orders ORDER BY id LIMIT 2")
	require.Equal(t, 0, code)
	require.Equal(t, `{"id":0,"channel":null,"day":"2026-01-01"}`+"\n"+`{"id":1,"channel":"web","day":"2026-01-02"}`+"\n", out)

	out, stderr, code = agnes(t, "", "query", "--format", "arrow", "SELECT id FROM orders ORDER BY id")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `^\(100 rows, [0-9.]+ s\)\n$`, stderr)
	r, err := ipc.NewReader(strings.NewReader(out))
	require.NoError(t, err)
	var ids []int64
	for r.Next() {
		ids = append(ids, r.RecordBatch().Column(0).(*array.Int64).Int64Values()...)
	}
	require.NoError(t, r.Err())
	require.Len(t, ids, 100)
	require.EqualValues(t, 99, ids[99])

	_, stderr, code = agnes(t, "", "query", "SELECT * FROM customers")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "permission denied: access denied to table 'customers'")
}

// TestCLIQueryCtrlC cancels `agnes query` (as Ctrl-C does, through its context) and
// checks the server's query was interrupted, not left running.
func TestCLIQueryCtrlC(t *testing.T) {
	s := shop(t, ts.WithConfig(func(c *configT) { c.Query.PerUserConcurrency = 1 }))
	t.Setenv("AGNES_CONFIG_DIR", t.TempDir())
	t.Setenv("AGNES_SERVER", s.URL)
	t.Setenv("AGNES_TOKEN", s.AdminToken)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	var errb bytes.Buffer
	go func() {
		done <- cli.Main(ctx, "test", []string{"query", "SELECT count(*) FROM range(100000000000) a"}, strings.NewReader(""), io.Discard, &errb)
	}()
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	cancel()
	require.Equal(t, 1, <-done)
	require.Contains(t, errb.String(), "query canceled")
	// With a cap of one query per user, a new query succeeds only once the
	// interrupted one has really stopped on the server.
	require.Eventually(t, func() bool {
		_, err := s.Clients(ts.Connect, s.AdminToken).Query.Query(context.Background(), &agnesv1.QueryRequest{Sql: "SELECT 1"})
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)
	require.Less(t, time.Since(start), 5*time.Second)
}
