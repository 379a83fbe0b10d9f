package jira_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/connectortest"
	"github.com/agnesdata/agnes/connectors/jira"
	"github.com/agnesdata/agnes/connectors/jira/jirafake"
)

func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) connectors.Connector {
		f := jirafake.New(t, jirafake.Options{})
		for i := range 6 {
			k := f.CreateIssue(jirafake.NewIssue{Summary: fmt.Sprint("issue ", i)})
			f.AddComment(k, jirafake.Agent, "hi", true)
			f.AddRemoteLink(k, "https://wiki.example.com/x", "x")
			f.Advance(20 * 24 * time.Hour)
		}
		src, err := jira.Open("jira", map[string]any{
			"base_url": f.URL(), "email": f.Email(), "api_token": f.Token(), "project": "SUP",
			"sla_fields": slaField + ":" + slaColumn,
		})
		require.NoError(t, err)
		return src
	})
}

func TestExtractInputErrors(t *testing.T) {
	f := jirafake.New(t, jirafake.Options{})
	src, err := jira.New("jira", jira.Settings{BaseURL: f.URL(), Email: f.Email(), APIToken: connectors.NewSecret(f.Token())})
	require.NoError(t, err)
	w := mustWriter(t, t.TempDir()+"/jira")
	ctx := context.Background()
	var ie *connectors.InputError
	_, err = src.Extract(ctx, connectors.TableSpec{ID: "issues", SourceTable: "issues"}, w)
	require.ErrorAs(t, err, &ie)
	require.ErrorContains(t, err, "set project")
	_, err = src.Extract(ctx, connectors.TableSpec{ID: "jira_issues", SourceTable: "issues"}, w)
	require.ErrorAs(t, err, &ie)
	require.ErrorContains(t, err, "under its own name")
	_, err = src.Extract(ctx, connectors.TableSpec{ID: "worklogs", SourceTable: "worklogs"}, w)
	require.ErrorIs(t, err, connectors.ErrNotFound)
}

func TestSettings(t *testing.T) {
	base := map[string]any{"domain": "acme.atlassian.net", "email": "ann@acme.com", "api_token": "tok-SECRET-1"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	_, err := jira.Open("jira", base)
	require.NoError(t, err)
	for _, tc := range []struct {
		raw  map[string]any
		want string
	}{
		{with("email", nil), "email is required"},
		{with("api_token", nil), "api_token is required"},
		{with("domain", nil), "domain or base_url is required"},
		{with("domain", "https://acme.atlassian.net"), "is not a host name"},
		{with("base_url", "ftp://x"), "not an absolute http(s) URL"},
		{with("base_url", "http://jira.example.com"), "plain http is only allowed to a loopback host"},
		{with("base_url", "https://jira.example.com/?a=b"), "must not carry a query"},
		{with("cloud_id", "a b"), "is not a cloud id"},
		{with("project", "sup"), "is not a project key"},
		{with("since", "01/02/2025"), "is not a date"},
		{with("sla_fields", "cf_1"), "is not a field id"},
		{with("sla_fields", "customfield_1:a,customfield_2:a"), `column "a" appears twice`},
		{with("custom_fields", map[string]any{"severity": "x"}), "is not a field id"},
		{with("custom_fields", map[string]any{"colour": "customfield_1"}), "is not a configurable column"},
		{with("attachment_max_bytes", -1), "is negative"},
		{with("concurrency", 99), "is not between 1 and 32"},
		{with("tokn", "x"), "tokn"},
	} {
		_, err := jira.Open("jira", tc.raw)
		require.ErrorContains(t, err, tc.want, "%v", tc.raw)
		require.NotContains(t, err.Error(), "tok-SECRET-1")
	}
	_, err = jira.Open("bad name", base)
	require.ErrorContains(t, err, "not a valid source name")

	// An SLA column named like a built-in gets the cf_ prefix.
	c, err := jira.Open("jira", with("sla_fields", "customfield_10328:status"))
	require.NoError(t, err)
	found, err := c.Discover(context.Background())
	require.NoError(t, err)
	require.Equal(t, "issues", found[0].ID)
	require.Len(t, found[0].Columns, 45)
	require.Equal(t, "cf_status", found[0].Columns[44])

	env := map[string]string{
		"JIRA_DOMAIN": "acme.atlassian.net", "JIRA_EMAIL": "ann@acme.com", "JIRA_API_TOKEN": "tok-SECRET-1",
		"JIRA_CLOUD_ID": "abc-123", "JIRA_WEBHOOK_SECRET": "wh", "JIRA_REFRESH_FIELDS": "customfield_10328:ttfr, customfield_10329",
		"JIRA_PROJECT": "SUP", "JIRA_DOWNLOAD_ATTACHMENTS": "true", "JIRA_ATTACHMENT_MAX_BYTES": "1000",
	}
	s, err := jira.SettingsFromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, []string{"customfield_10328:ttfr", "customfield_10329"}, s.SLAFields)
	require.True(t, s.DownloadAttachments)
	require.EqualValues(t, 1000, s.AttachmentMaxBytes)
	require.Equal(t, "wh", s.WebhookSecret.Reveal())
	_, err = jira.New("jira", s)
	require.NoError(t, err)
	for _, out := range []string{fmt.Sprintf("%v %+v %#v", s, s, s), mustJSON(t, s)} {
		require.NotContains(t, out, "tok-SECRET-1")
	}
	env["JIRA_DOWNLOAD_ATTACHMENTS"] = "maybe"
	_, err = jira.SettingsFromEnv(func(k string) string { return env[k] })
	require.ErrorContains(t, err, "JIRA_DOWNLOAD_ATTACHMENTS")
}

func mustJSON(t *testing.T, v any) string {
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return string(raw)
}

func TestRetryable(t *testing.T) {
	require.True(t, jira.Retryable(&jira.HTTPError{Status: 429}))
	require.True(t, jira.Retryable(&jira.HTTPError{Status: 503}))
	require.True(t, jira.Retryable(fmt.Errorf("x: %w", jira.ErrIncomplete)))
	require.False(t, jira.Retryable(&jira.HTTPError{Status: 400}))
	require.False(t, jira.Retryable(errors.New("other")))
}
