package apitest

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/jira/jirafake"
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
