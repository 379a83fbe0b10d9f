package jiraserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/jira"
	"github.com/agnesdata/agnes/connectors/jira/jirafake"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	"github.com/agnesdata/agnes/server/internal/app"
	"github.com/agnesdata/agnes/server/internal/config"
	"github.com/agnesdata/agnes/server/internal/jiraserver"
	"github.com/agnesdata/agnes/server/internal/store"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

const (
	secret    = "whsec-test-123"
	slaField  = "customfield_10328"
	slaColumn = "sla_first_response"
)

// env is the real server with a Jira source pointing at a fake Jira Cloud,
// and the fake's webhook sender pointing at the server's receiver.
type env struct {
	t      *testing.T
	ctx    context.Context
	fake   *jirafake.Fake
	srv    *ts.Server
	url    string // the server's base URL (changes on restart)
	admin  string // an admin's token
	app    *app.App
	sender *jirafake.Sender
}

// newFake starts a fake Jira whose clock is a day behind the real one, so
// the relative JQL dates of the consistency check and the server's clock
// agree about what is recent.
func newFake(t *testing.T) *jirafake.Fake {
	return jirafake.New(t, jirafake.Options{Start: time.Now().Add(-24 * time.Hour)})
}

// sources is the configuration of a Jira source over f; edit adjusts it.
func sources(f *jirafake.Fake, edit ...func(map[string]any)) map[string]map[string]any {
	s := map[string]any{"type": jira.Type, "base_url": f.URL(), "email": f.Email(), "api_token": f.Token(),
		"webhook_secret": secret, "project": "SUP", "sla_fields": slaField + ":" + slaColumn}
	for _, e := range edit {
		e(s)
	}
	return map[string]map[string]any{"jira": s}
}

func newEnv(t *testing.T, edit ...func(map[string]any)) *env {
	t.Helper()
	f := newFake(t)
	return newEnvWith(t, f, sources(f, edit...))
}

func newEnvWith(t *testing.T, f *jirafake.Fake, srcs map[string]map[string]any) *env {
	t.Helper()
	s := ts.New(t, ts.WithConfig(func(c *config.Config) { c.Sources = srcs }))
	e := &env{t: t, ctx: context.Background(), fake: f, srv: s, url: s.URL, admin: s.AdminToken, app: s.App}
	e.sender = &jirafake.Sender{URL: s.URL + "/api/jira/webhook", Secret: secret}
	return e
}

// restart stops the server (as a crash would leave it: jobs unfinished, the
// inbox as it was) and starts another process's worth of it on the same data
// directory.
func (e *env) restart(dataDir string, srcs map[string]map[string]any) {
	e.t.Helper()
	require.NoError(e.t, e.app.Close())
	cfg := config.Default()
	cfg.DataDir, cfg.JWTSecret, cfg.RateLimit, cfg.Demo = dataDir, connectors.NewSecret(ts.Secret), false, false
	cfg.Sources = srcs
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(e.t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(e.t, err)
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	e.t.Cleanup(func() {
		cancel()
		<-done
		_ = a.Close()
	})
	e.app, e.url = a, "http://"+ln.Addr().String()
	e.sender.URL = e.url + "/api/jira/webhook"
}

// send delivers webhooks and requires a 200 for each.
func (e *env) send(ds []jirafake.Delivery) {
	e.t.Helper()
	require.NoError(e.t, e.sender.SendAll(e.ctx, ds))
}

// sync delivers every pending webhook of the fake and waits until the server
// has processed them.
func (e *env) sync() {
	e.t.Helper()
	e.send(e.fake.Deliveries())
	e.settle()
}

// settle waits until the inbox is empty: every event processed (applied and
// published) or given up.
func (e *env) settle() {
	e.t.Helper()
	require.Eventually(e.t, func() bool { return e.health().Backlog == 0 }, time.Minute, 20*time.Millisecond,
		"the webhook inbox did not drain")
}

// rest calls the server's REST API.
func (e *env) rest(method, path, token string, body any) *ts.RESTResponse {
	e.t.Helper()
	srv := *e.srv
	srv.URL = e.url
	return srv.REST(e.t, method, path, token, body)
}

func (e *env) health() jiraserver.Health {
	e.t.Helper()
	res := e.rest(http.MethodGet, "/api/jira/webhook/health", e.admin, nil)
	require.Equal(e.t, http.StatusOK, res.Status, "%s", res.Body)
	var h jiraserver.Health
	res.JSON(e.t, &h)
	return h
}

// query runs SQL through POST /api/query as the admin.
func (e *env) query(sql string) [][]any {
	e.t.Helper()
	res := e.rest(http.MethodPost, "/api/query", e.admin, map[string]any{"sql": sql})
	require.Equal(e.t, http.StatusOK, res.Status, "%s: %s", sql, res.Body)
	var out struct {
		Rows [][]any `json:"rows"`
	}
	res.JSON(e.t, &out)
	return out.Rows
}

// strings1 is the first column of a query's rows as text.
func (e *env) strings1(sql string) []string {
	e.t.Helper()
	var out []string
	for _, r := range e.query(sql) {
		out = append(out, fmt.Sprint(r[0]))
	}
	return out
}

func (e *env) count(sql string) int {
	e.t.Helper()
	return int(e.query(sql)[0][0].(float64))
}

// manifest is the admin's manifest: table → hash.
func (e *env) manifest() map[string]string {
	e.t.Helper()
	res := e.rest(http.MethodGet, "/api/sync/manifest", e.admin, nil)
	require.Equal(e.t, http.StatusOK, res.Status, "%s", res.Body)
	var m struct {
		Tables map[string]struct {
			Hash string `json:"hash"`
			Rows int64  `json:"rows"`
		} `json:"tables"`
	}
	res.JSON(e.t, &m)
	out := map[string]string{}
	for k, v := range m.Tables {
		out[k] = v.Hash
	}
	return out
}

// catalog is the admin's catalog entry of a table, as JSON.
func (e *env) catalog(table string) string {
	e.t.Helper()
	res := e.rest(http.MethodGet, "/api/catalog/tables/"+table, e.admin, nil)
	require.Equal(e.t, http.StatusOK, res.Status, "%s", res.Body)
	return string(res.Body)
}

// jiraTables are the six tables.
var jiraTables = jira.Tables[:]

// dump renders every table's rows without the columns that say when (or
// where) they were written, sorted: equal dumps mean equal data.
func (e *env) dump() map[string][]string {
	e.t.Helper()
	out := map[string][]string{}
	for _, tbl := range jiraTables {
		sel := "SELECT * FROM " + tbl
		if tbl == "issues" {
			sel = "SELECT * EXCLUDE (_synced_at) FROM issues"
		}
		for _, r := range e.query(sel) {
			b, err := json.Marshal(r)
			require.NoError(e.t, err)
			out[tbl] = append(out[tbl], string(b))
		}
		slices.Sort(out[tbl])
	}
	return out
}

// jiraClient is the JiraService over protocol p (Connect or gRPC).
func (e *env) jiraClient(p ts.Protocol, token string) agnesv1connect.JiraServiceClient {
	return agnesv1connect.NewJiraServiceClient(ts.HTTP2Client(), e.url, append(ts.ClientOptions(p), ts.Bearer(token))...)
}

// waitJob waits for a job to end and returns it.
func (e *env) waitJob(id string) *store.Job {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 2*time.Minute)
	defer cancel()
	j, err := e.app.Jobs.Wait(ctx, id)
	require.NoError(e.t, err)
	return j
}

// waitBackfill polls GetJiraBackfill until the backfill ends.
func (e *env) waitBackfill(c agnesv1connect.JiraServiceClient, id string) *agnesv1.JiraBackfill {
	e.t.Helper()
	var b *agnesv1.JiraBackfill
	require.Eventually(e.t, func() bool {
		res, err := c.GetJiraBackfill(e.ctx, &agnesv1.GetJiraBackfillRequest{JobId: id})
		require.NoError(e.t, err)
		b = res.GetBackfill()
		s := b.GetState()
		return s != agnesv1.SyncJobState_SYNC_JOB_STATE_PENDING && s != agnesv1.SyncJobState_SYNC_JOB_STATE_RUNNING
	}, 2*time.Minute, 50*time.Millisecond)
	return b
}
