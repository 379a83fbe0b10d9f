package jira_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/connectortest"
	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/connectors/jira"
	"github.com/agnesdata/agnes/connectors/jira/jirafake"
)

const (
	webhookSecret = "whsec-test-123"
	slaField      = "customfield_10328"
	slaColumn     = "sla_first_response"
)

// env is a Jira fake, a source over it, a store in a temp extract
// directory and a webhook receiver built from the package's parts the way
// the server wires them: verify, parse, dedup, then refetch and Apply in
// one batch and publish with one Update.
type env struct {
	t      testing.TB
	ctx    context.Context
	fake   *jirafake.Fake
	src    *jira.Source
	st     *jira.Store
	w      *extract.Writer
	dir    string
	sender *jirafake.Sender

	mu     sync.Mutex
	sleeps []time.Duration
	seen   map[string]bool
	queue  []jira.Event
}

func settingsFor(f *jirafake.Fake) jira.Settings {
	return jira.Settings{
		BaseURL: f.URL(), Email: f.Email(), APIToken: connectors.NewSecret(f.Token()),
		WebhookSecret: connectors.NewSecret(webhookSecret), Project: "SUP",
		SLAFields: []string{slaField + ":" + slaColumn},
	}
}

func newEnv(t testing.TB, edit ...func(*jira.Settings)) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), seen: map[string]bool{}}
	e.fake = jirafake.New(t, jirafake.Options{})
	s := settingsFor(e.fake)
	for _, ed := range edit {
		ed(&s)
	}
	e.src = e.newSource(s)
	e.dir = filepath.Join(t.TempDir(), "jira")
	var err error
	e.w, err = extract.NewWriter(e.dir)
	require.NoError(t, err)
	t.Cleanup(func() { e.w.Close() })
	e.st, err = e.src.OpenStore(e.dir)
	require.NoError(t, err)
	t.Cleanup(func() { e.st.Close() })
	rcv := httptest.NewServer(http.HandlerFunc(e.receive))
	t.Cleanup(rcv.Close)
	e.sender = &jirafake.Sender{URL: rcv.URL, Secret: webhookSecret}
	return e
}

// newSource builds a source over the fake whose retries never sleep (the
// waits are recorded) and whose clock follows the fake's, strictly
// increasing so that every fetch is later than the one before.
func (e *env) newSource(s jira.Settings) *jira.Source {
	var tick atomic.Int64
	src, err := jira.New("jira", s,
		jira.WithSleep(func(_ context.Context, d time.Duration) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.sleeps = append(e.sleeps, d)
			return nil
		}),
		jira.WithClock(func() time.Time { return e.fake.Now().Add(time.Duration(tick.Add(1)) * time.Microsecond) }))
	require.NoError(e.t, err)
	return src
}

func (e *env) slept() []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.sleeps)
}

// receive is the webhook route: 503 without a secret, 401 on a bad
// signature, 400 on a bad body, 200 after queueing (deduplicated on the
// delivery id).
func (e *env) receive(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	err := jira.VerifySignature(e.src.WebhookSecret(), body, jira.SignatureHeader(r.Header))
	switch {
	case errors.Is(err, jira.ErrNoSecret):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	ev, err := jira.ParseEvent(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	if id := r.Header.Get("X-Atlassian-Webhook-Identifier"); !e.seen[id] {
		e.seen[id] = true
		e.queue = append(e.queue, ev)
	}
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok", "event": ev.Name, "issue": ev.IssueKey})
}

// deliver sends deliveries to the receiver and processes what it queued.
func (e *env) deliver(ds []jirafake.Delivery) jira.Result {
	e.t.Helper()
	require.NoError(e.t, e.sender.SendAll(e.ctx, ds))
	return e.process()
}

// sync delivers every pending webhook of the fake.
func (e *env) sync() jira.Result {
	e.t.Helper()
	return e.deliver(e.fake.Deliveries())
}

// drain takes the events the receiver queued.
func (e *env) drain() []jira.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	events := e.queue
	e.queue = nil
	return events
}

// process is the job: events → keys → refetch → one Apply → one Update.
func (e *env) process() jira.Result {
	e.t.Helper()
	keys, err := e.st.KeysFor(e.ctx, e.drain())
	require.NoError(e.t, err)
	changes, err := e.st.Refetch(e.ctx, keys)
	require.NoError(e.t, err)
	return e.apply(changes)
}

func (e *env) apply(changes []jira.Change) jira.Result {
	e.t.Helper()
	res, err := e.st.Apply(e.ctx, e.w, changes)
	require.NoError(e.t, err)
	require.NoError(e.t, e.w.Update(e.ctx, res.Tables...))
	return res
}

// fullSync extracts every table of the source through the Connector (as a
// sync without the server's hand-over would) into dir with a Writer of its
// own, and publishes them with one Update.
func (e *env) fullSync(dir string) {
	e.t.Helper()
	w := mustWriter(e.t, dir)
	found, err := e.src.Discover(e.ctx)
	require.NoError(e.t, err)
	var tables []extractTable
	for _, d := range found {
		tbl, err := e.src.Extract(e.ctx, specOf(d), w)
		require.NoError(e.t, err, d.ID)
		tables = append(tables, tbl)
	}
	require.NoError(e.t, w.Update(e.ctx, tables...))
}

// query runs SQL against the published extract (its views), as the
// master database would see it.
func query(t testing.TB, dir, q string, args ...any) [][]any {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer db.Close()
	db.SetMaxOpenConns(1)
	_, err = db.Exec("ATTACH '" + filepath.Join(dir, extract.DBFile) + "' AS x (READ_ONLY)")
	require.NoError(t, err)
	_, err = db.Exec("USE x")
	require.NoError(t, err)
	rows, err := db.Query(q, args...)
	require.NoError(t, err, q)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var out [][]any
	for rows.Next() {
		r := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range r {
			ptrs[i] = &r[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

func (e *env) query(q string, args ...any) [][]any {
	e.t.Helper()
	return query(e.t, e.dir, q, args...)
}

func (e *env) count(q string, args ...any) int64 {
	e.t.Helper()
	return e.query(q, args...)[0][0].(int64)
}

// strings1 returns the first column of q's rows as strings.
func (e *env) strings1(q string, args ...any) []string {
	e.t.Helper()
	var out []string
	for _, r := range e.query(q, args...) {
		out = append(out, fmt.Sprint(r[0]))
	}
	return out
}

// dump renders every table's rows without _synced_at, sorted, for
// comparing two extracts.
func dump(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, tbl := range jira.Tables {
		sel := "SELECT * FROM "
		if tbl == "issues" {
			sel = "SELECT * EXCLUDE (_synced_at) FROM "
		}
		for _, r := range query(t, dir, sel+tbl) {
			out[tbl] = append(out[tbl], fmt.Sprint(r...))
		}
		slices.Sort(out[tbl])
	}
	return out
}

type extractTable = extract.Table

func mustWriter(t testing.TB, dir string) *extract.Writer {
	t.Helper()
	w, err := extract.NewWriter(dir)
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	return w
}

// partsOf lists a table's month partitions.
func partsOf(t *testing.T, dir, table string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, extract.DataDir, table, "*.parquet"))
	require.NoError(t, err)
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimSuffix(filepath.Base(f), ".parquet"))
	}
	return out
}

func specOf(d connectors.Discovered) connectors.TableSpec { return connectortest.Spec(d) }
