package jiraserver_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/jira/jirafake"
	"github.com/agnesdata/agnes/server/internal/config"
	"github.com/agnesdata/agnes/server/internal/jiraserver"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// post sends a body to a webhook path with the given headers.
func post(t *testing.T, url string, body []byte, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(res.Body)
	return res.StatusCode, buf.String()
}

func signed(body []byte) map[string]string {
	return map[string]string{"X-Hub-Signature": "sha256=" + jirafake.Sign(secret, body)}
}

// TestReceiverAnswers: the receiver's contract, on both paths: 401 without a
// valid signature (nothing stored), 400 for bodies that are no event with a
// valid key, 413 over 1 MiB, 200 with a receipt; a delivery seen before is
// acknowledged as a duplicate and stored once.
func TestReceiverAnswers(t *testing.T) {
	e := newEnv(t)
	key := e.fake.CreateIssue(jirafake.NewIssue{Summary: "first"})
	d := e.fake.Deliveries()[0]

	for _, path := range []string{"/api/jira/webhook", "/webhooks/jira"} {
		url := e.url + path
		status, body := post(t, url, d.Body, nil)
		require.Equal(t, http.StatusUnauthorized, status, body)
		require.Contains(t, body, `"code":"unauthenticated"`)
		status, _ = post(t, url, d.Body, map[string]string{"X-Hub-Signature": "sha256=" + jirafake.Sign("other", d.Body)})
		require.Equal(t, http.StatusUnauthorized, status)
		status, _ = post(t, url, d.Body, map[string]string{"X-Hub-Signature": "sha256=zz"})
		require.Equal(t, http.StatusUnauthorized, status)
		tampered := bytes.Replace(d.Body, []byte(key), []byte("SUP-999"), 1)
		status, _ = post(t, url, tampered, signed(d.Body))
		require.Equal(t, http.StatusUnauthorized, status, "the signature covers the exact bytes")

		for name, bad := range map[string]string{
			"empty":       "",
			"not json":    "{not json",
			"empty event": "{}",
			"bad key":     `{"webhookEvent":"jira:issue_updated","issue":{"key":"sup-1"}}`,
			"no key":      `{"webhookEvent":"comment_created","issue":null}`,
			"array":       `[1,2]`,
		} {
			status, body := post(t, url, []byte(bad), signed([]byte(bad)))
			require.Equal(t, http.StatusBadRequest, status, "%s: %s", name, body)
			require.Contains(t, body, `"code":"invalid_argument"`, name)
		}
		huge := []byte(`{"webhookEvent":"jira:issue_updated","issue":{"key":"SUP-1"},"pad":"` + strings.Repeat("x", jiraserver.MaxWebhookBytes) + `"}`)
		status, _ = post(t, url, huge, signed(huge))
		require.Equal(t, http.StatusRequestEntityTooLarge, status)
	}
	require.Zero(t, e.health().Backlog, "nothing refused was stored")

	// Jira's own form, bare hex, and X-Hub-Signature-256 are all accepted.
	for i, sig := range []jirafake.Signing{jirafake.SignPrefixed, jirafake.SignBareHex, jirafake.SignHeader256} {
		e.fake.Update(key, jirafake.Agent, map[string]any{"summary": "edit " + string(rune('a'+i))})
		s := *e.sender
		s.Signing = sig
		dd := e.fake.Deliveries()[0]
		res, err := s.Send(e.ctx, dd)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
		require.JSONEq(t, `{"status":"ok","event":"jira:issue_updated","issue":"`+key+`","delivery":"`+
			dd.ID+`","duplicate":false}`, string(res.Body))
	}
	res, err := e.sender.Send(e.ctx, d)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status)
	res, err = e.sender.Send(e.ctx, d)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status)
	require.Contains(t, string(res.Body), `"duplicate":true`, "a retried delivery is acknowledged, not stored twice")
	e.settle()
	require.Equal(t, [][]any{{"edit c"}}, e.query("SELECT summary FROM issues"))

	// Without Jira's delivery id the bytes identify the delivery; an odd id
	// is hashed, never refused (Jira does not retry a 400).
	e.fake.Update(key, jirafake.Agent, map[string]any{"summary": "edit d"})
	d = e.fake.Deliveries()[0]
	status, body := post(t, e.url+"/webhooks/jira", d.Body, signed(d.Body))
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `"delivery":"body-sha256:`)
	require.Contains(t, body, `"duplicate":false`)
	_, body = post(t, e.url+"/webhooks/jira", d.Body, signed(d.Body))
	require.Contains(t, body, `"duplicate":true`)
	odd := signed(d.Body)
	odd["X-Atlassian-Webhook-Identifier"] = "a/b c\\" + strings.Repeat("x", 300)
	status, body = post(t, e.url+"/webhooks/jira", d.Body, odd)
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `"delivery":"id-sha256:`)
	e.settle()
	require.Equal(t, [][]any{{"edit d"}}, e.query("SELECT summary FROM issues"))
}

// TestReceiverFailsClosed: without a secret, or without any Jira source,
// deliveries are refused with 503 and nothing is stored.
func TestReceiverFailsClosed(t *testing.T) {
	f := newFake(t)
	f.CreateIssue(jirafake.NewIssue{Summary: "x"})
	d := f.Deliveries()[0]

	e := newEnvWith(t, f, sources(f, func(s map[string]any) { delete(s, "webhook_secret") }))
	status, body := post(t, e.url+"/api/jira/webhook", d.Body, signed(d.Body))
	require.Equal(t, http.StatusServiceUnavailable, status, body)
	require.Contains(t, body, "JIRA_WEBHOOK_SECRET")
	h := e.health()
	require.Equal(t, jiraserver.Health{Status: "not_configured", Configured: true, Source: "jira", Generation: h.Generation}, h)

	none := ts.New(t, ts.WithConfig(func(c *config.Config) { c.Sources = nil }))
	status, body = post(t, none.URL+"/webhooks/jira", d.Body, signed(d.Body))
	require.Equal(t, http.StatusServiceUnavailable, status, body)
	res := none.REST(t, http.MethodGet, "/api/jira/webhook/health", none.AdminToken, nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Contains(t, string(res.Body), `"configured":false`)
	res = none.REST(t, http.MethodGet, "/api/jira/webhook/health", none.UserToken, nil)
	require.Equal(t, http.StatusForbidden, res.Status, "health is for admins")
}
