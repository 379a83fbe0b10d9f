package apitest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/jira/jirafake"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/config"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// TestJiraWebhookLogsAndSecrets: the webhook routes are logged under their
// name with their real outcome, and neither the webhook secret nor the Jira
// API token ever reaches the log or an answer, even when Jira fails.
func TestJiraWebhookLogsAndSecrets(t *testing.T) {
	const secret, token = "whsec-apitest-SECRET-1", "jira-token-SECRET-2"
	f := jirafake.New(t, jirafake.Options{Token: token, Start: time.Now().Add(-24 * time.Hour)})
	logs := &syncBuffer{}
	s := ts.New(t, ts.WithLog(logs), ts.WithConfig(func(c *config.Config) {
		c.Sources = map[string]map[string]any{"jira": {"type": "jira", "base_url": f.URL(), "email": f.Email(),
			"api_token": token, "webhook_secret": secret, "project": "SUP"}}
	}))
	key := f.CreateIssue(jirafake.NewIssue{Summary: "hello"})
	f.Inject(jirafake.RouteIssue, jirafake.Fault{Status: http.StatusUnauthorized})
	ds := f.Deliveries()
	sender := &jirafake.Sender{URL: s.URL + "/api/jira/webhook", Secret: secret}
	require.NoError(t, sender.SendAll(context.Background(), ds))
	wrong := &jirafake.Sender{URL: s.URL + "/webhooks/jira", Secret: secret, Signing: jirafake.SignWrong}
	res, err := wrong.Send(context.Background(), ds[0])
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, res.Status)
	require.NotContains(t, string(res.Body), secret)

	// Jira refused the first refetch (401, a bad token): the event is retried, and applied.
	require.Eventually(t, func() bool {
		r := s.REST(t, http.MethodPost, "/api/query", s.AdminToken, map[string]any{"sql": "SELECT issue_key FROM issues"})
		return r.Status == http.StatusOK && strings.Contains(string(r.Body), key)
	}, time.Minute, 50*time.Millisecond)
	health := s.REST(t, http.MethodGet, "/api/jira/webhook/health", s.AdminToken, nil)
	require.Equal(t, http.StatusOK, health.Status)

	var ok, refused bool
	for _, path := range []string{"/api/jira/webhook", "/webhooks/jira"} {
		for _, line := range logs.requestLines(t, path) {
			require.Equal(t, "jira.webhook", line["rpc"])
			switch line["status"] {
			case float64(http.StatusOK):
				ok = ok || line["code"] == "ok"
			case float64(http.StatusUnauthorized):
				refused = refused || line["code"] == "unauthenticated"
			}
		}
	}
	require.True(t, ok && refused, "accepted and refused deliveries are both logged with their outcome")
	logs.mu.Lock()
	all := bytes.Clone(logs.buf.Bytes())
	logs.mu.Unlock()
	require.Contains(t, string(all), "jira: refetch", "the refused refetch is logged")
	basic := base64.StdEncoding.EncodeToString([]byte(f.Email() + ":" + token))
	for _, leak := range []string{secret, token, basic} {
		require.NotContains(t, string(all), leak)
		require.NotContains(t, string(health.Body), leak)
	}
}

// TestJiraKilledServerLosesNoEvent: webhooks acknowledged by a server that is
// then killed (SIGKILL, while its apply job waits on Jira) are processed by
// the next server process on the same data directory.
func TestJiraKilledServerLosesNoEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a server process")
	}
	const secret = "whsec-kill-test"
	f := jirafake.New(t, jirafake.Options{Start: time.Now().Add(-24 * time.Hour)})
	for k, v := range map[string]string{"JIRA_BASE_URL": f.URL(), "JIRA_EMAIL": f.Email(), "JIRA_API_TOKEN": f.Token(),
		"JIRA_WEBHOOK_SECRET": secret, "JIRA_PROJECT": "SUP"} {
		t.Setenv(k, v) // the server processes inherit them
	}
	ctx := context.Background()
	dataDir := filepath.Join(t.TempDir(), "data")
	token := seedOfflineAdmin(t, dataDir)
	summaries := func(url string) string {
		req, err := http.NewRequest(http.MethodPost, url+"/api/query", strings.NewReader(`{"sql":"SELECT string_agg(issue_key || '=' || summary, ',' ORDER BY issue_key) FROM issues"}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		var out struct{ Rows [][]any }
		if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&out) != nil || len(out.Rows) == 0 {
			return ""
		}
		s, _ := out.Rows[0][0].(string)
		return s
	}

	bin := buildServer(t)
	srv := startServer(t, bin, dataDir)
	sender := &jirafake.Sender{URL: srv.url + "/api/jira/webhook", Secret: secret}
	key := f.CreateIssue(jirafake.NewIssue{Summary: "first"})
	require.NoError(t, sender.SendAll(ctx, f.Deliveries()))
	require.Eventually(t, func() bool { return summaries(srv.url) == key+"=first" }, time.Minute, 50*time.Millisecond)

	release, entered := make(chan struct{}), make(chan struct{}, 1)
	f.Inject(jirafake.RouteIssue, jirafake.Fault{Do: func() {
		entered <- struct{}{}
		<-release
	}})
	f.Update(key, jirafake.Agent, map[string]any{"summary": "second"})
	other := f.CreateIssue(jirafake.NewIssue{Summary: "new"})
	require.NoError(t, sender.SendAll(ctx, f.Deliveries()), "acknowledged")
	<-entered // the apply job waits on Jira
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGKILL))
	_, _ = srv.cmd.Process.Wait()
	close(release)

	srv = startServer(t, bin, dataDir)
	require.Eventually(t, func() bool { return summaries(srv.url) == key+"=second,"+other+"=new" }, time.Minute, 50*time.Millisecond,
		"the events acknowledged before the kill were processed after the restart")
}

// TestJiraSyncOfARegisteredTableRunsTheCheck: a sync of a registered Jira
// table does not extract beside the webhooks' writes: it runs the source's
// consistency check, which brings in what no webhook announced.
func TestJiraSyncOfARegisteredTableRunsTheCheck(t *testing.T) {
	f := jirafake.New(t, jirafake.Options{Start: time.Now().Add(-24 * time.Hour)})
	s := ts.New(t, ts.WithConfig(func(c *config.Config) {
		c.Sources = map[string]map[string]any{"jira": {"type": "jira", "base_url": f.URL(), "email": f.Email(),
			"api_token": f.Token(), "webhook_secret": "whsec-1", "project": "SUP"}}
	}))
	key := f.CreateIssue(jirafake.NewIssue{Summary: "never announced"})
	f.AddComment(key, jirafake.Agent, "and a comment", nil)
	f.Advance(10 * time.Minute) // older than the last minutes the check leaves to webhooks in flight
	register(t, s, map[string]any{"name": "issues", "source_type": "jira", "source_table": "issues"})
	job := syncNow(t, s, "issues")
	require.Equal(t, agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, job.GetState(), "%v", job)
	require.Equal(t, [][]string{{key}}, queryStrings(t, s, s.AdminToken, "SELECT issue_key FROM issues"))
	// The check repaired the issue in all six tables, not only the one synced.
	require.Equal(t, [][]string{{key, "1"}}, queryStrings(t, s, s.AdminToken, "SELECT issue_key, count(*) FROM comments GROUP BY ALL"))
}
