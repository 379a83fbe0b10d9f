package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/connectors/jira/jirafake"
	"github.com/agnesdata/agnes/server/internal/config"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := root()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func fakeWithIssues(t *testing.T) *jirafake.Fake {
	f := jirafake.New(t, jirafake.Options{Start: time.Now().Add(-24 * time.Hour)})
	for range 3 {
		f.CreateIssue(jirafake.NewIssue{Summary: "ticket"})
	}
	f.Deliveries()
	return f
}

// TestBackfillAgainstRunningServer: the command starts the backfill through
// the admin RPC and follows its progress to the end.
func TestBackfillAgainstRunningServer(t *testing.T) {
	f := fakeWithIssues(t)
	s := ts.New(t, ts.WithConfig(func(c *config.Config) {
		c.Sources = map[string]map[string]any{"jira": {"type": "jira", "base_url": f.URL(), "email": f.Email(), "api_token": f.Token()}}
	}))
	out, err := run(t, "jira", "backfill", "--project", "SUP", "--since", "2020-01-01", "--url", s.URL, "--token", s.AdminToken,
		"--progress-every", "20ms")
	require.NoError(t, err, out)
	require.Contains(t, out, "backfill of SUP (source jira) started")
	require.Contains(t, out, "succeeded: 3/3 issues, 3 written, 0 deleted, 0 failed")

	out, err = run(t, "jira", "backfill", "--project", "SUP", "--url", s.URL, "--token", s.UserToken)
	require.ErrorContains(t, err, "permission_denied", out)
	_, err = run(t, "jira", "backfill", "--url", s.URL, "--token", s.AdminToken)
	require.ErrorContains(t, err, "--project is required")
	t.Setenv("AGNES_TOKEN", "")
	_, err = run(t, "jira", "backfill", "--project", "SUP", "--url", s.URL)
	require.ErrorContains(t, err, "admin token is required")
}

// TestBackfillOffline: with --offline the command loads the project into the
// data directory itself (the Jira source from the environment, as the server
// reads it); a server started afterwards serves the tables.
func TestBackfillOffline(t *testing.T) {
	f := fakeWithIssues(t)
	for k, v := range map[string]string{"JIRA_BASE_URL": f.URL(), "JIRA_EMAIL": f.Email(), "JIRA_API_TOKEN": f.Token()} {
		t.Setenv(k, v)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	out, err := run(t, "--data-dir", dataDir, "jira", "backfill", "--offline", "--project", "SUP", "--source", "nope")
	require.ErrorContains(t, err, `no Jira source is named "nope"`, out)
	out, err = run(t, "--data-dir", dataDir, "jira", "backfill", "--offline", "--project", "SUP")
	require.NoError(t, err, out)
	require.Contains(t, out, "3/3 issues")
	require.Contains(t, out, "done: 3 written")
	c, err := extract.Read(context.Background(), filepath.Join(dataDir, "extracts", "jira"))
	require.NoError(t, err)
	require.Len(t, c.Tables, 6)
	for _, tbl := range c.Tables {
		if tbl.TableName == "issues" {
			require.EqualValues(t, 3, tbl.Rows)
		}
	}
}
