package jiraserver_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/jira/jirafake"
)

// waitRetrying waits until the first attempt at the pending events failed
// and put them off.
func (e *env) waitRetrying(n int) {
	e.t.Helper()
	require.Eventually(e.t, func() bool { return e.health().Retrying >= n }, time.Minute, 20*time.Millisecond,
		"no event was put off")
}

// TestManyCommentsWith429MidWalk: a thread of 150 comments (the issue GET
// embeds the newest 100) is completed by paging, a 429 on the second page
// waited out; while Jira keeps answering 429 the event waits in the inbox
// and the stored thread stays as it was; once Jira answers, it completes.
func TestManyCommentsWith429MidWalk(t *testing.T) {
	e := newEnv(t)
	key := e.fake.CreateIssue(jirafake.NewIssue{Summary: "Busy thread"})
	e.fake.AddComments(key, jirafake.Customer, 150)
	e.fake.Inject(jirafake.RouteComments, jirafake.Fault{Skip: 1, Status: http.StatusTooManyRequests, RetryAfter: "1"})
	e.sync()
	require.Equal(t, 150, e.count("SELECT count(*) FROM comments"))
	require.Equal(t, 150, e.count("SELECT comment_count FROM issues"))
	require.Equal(t, []string{"comment 1", "comment 150"}, e.strings1("SELECT body FROM comments WHERE body IN ('comment 1', 'comment 150') ORDER BY created_at"))
	require.Equal(t, 3, e.fake.Hits(jirafake.RouteComments), "two pages and the retry")

	e.fake.AddComment(key, jirafake.Agent, "one more", true)
	e.fake.Inject(jirafake.RouteComments, jirafake.Fault{Skip: 1, Times: 1000, Status: http.StatusTooManyRequests, RetryAfter: "1"})
	hash := e.manifest()["comments"]
	e.send(e.fake.Deliveries())
	e.waitRetrying(1)
	require.Equal(t, 150, e.count("SELECT count(*) FROM comments"), "never a partial thread")
	require.Equal(t, hash, e.manifest()["comments"])
	require.Equal(t, "backlog", e.health().Status)

	e.fake.ClearFaults(jirafake.RouteComments)
	e.settle()
	require.Equal(t, 151, e.count("SELECT count(*) FROM comments"))
	require.Equal(t, "ok", e.health().Status)
}

// TestRemoteLinks5xxVs404: remote links that Jira fails to list (5xx beyond
// the retries) hold the event back and keep the stored rows; a 404 means
// the issue has none, and clears them.
func TestRemoteLinks5xxVs404(t *testing.T) {
	e := newEnv(t)
	key := e.fake.CreateIssue(jirafake.NewIssue{Summary: "Linked out"})
	e.fake.AddRemoteLink(key, "https://wiki.example.com/a", "Runbook")
	e.sync()
	require.Equal(t, []string{"Runbook"}, e.strings1("SELECT title FROM remote_links"))

	e.fake.Update(key, jirafake.Agent, map[string]any{"summary": "Linked out, still"})
	e.fake.Inject(jirafake.RouteRemoteLink, jirafake.Fault{Times: 1000, Status: http.StatusServiceUnavailable, RetryAfter: "1"})
	e.send(e.fake.Deliveries())
	e.waitRetrying(1)
	require.Equal(t, []string{"Linked out"}, e.strings1("SELECT summary FROM issues"), "nothing half-applied")
	require.Equal(t, []string{"Runbook"}, e.strings1("SELECT title FROM remote_links"))

	e.fake.ClearFaults(jirafake.RouteRemoteLink)
	e.settle()
	require.Equal(t, []string{"Linked out, still"}, e.strings1("SELECT summary FROM issues"))
	require.Equal(t, []string{"Runbook"}, e.strings1("SELECT title FROM remote_links"))

	e.fake.Update(key, jirafake.Agent, map[string]any{"summary": "No links"})
	e.fake.Inject(jirafake.RouteRemoteLink, jirafake.Fault{Status: http.StatusNotFound})
	e.sync()
	require.Zero(t, e.count("SELECT count(*) FROM remote_links"), "404: none")
	require.Equal(t, []string{"No links"}, e.strings1("SELECT summary FROM issues"))
}

// TestDuplicatesAndReordering: every delivery twice, the burst in reverse
// order, and Jira's retry of the whole burst afterwards end in Jira's state:
// equal to a backfill of the same site.
func TestDuplicatesAndReordering(t *testing.T) {
	e := newEnv(t)
	var keys []string
	for i := range 5 {
		k := e.fake.CreateIssue(jirafake.NewIssue{Summary: "Ticket", Priority: []string{"High", "Low"}[i%2]})
		keys = append(keys, k)
		e.fake.AddComment(k, jirafake.Customer, "first", true)
	}
	e.fake.Transition(keys[0], jirafake.Agent, "In Progress")
	e.fake.EditComment(keys[1], e.fake.CommentIDs(keys[1])[0], jirafake.Agent, "edited")
	e.fake.Link("Relates", keys[2], keys[3], jirafake.Agent)
	e.fake.DeleteIssue(keys[4], jirafake.Agent)
	ds := e.fake.Deliveries()
	e.send(jirafake.Duplicated(jirafake.Reversed(ds)))
	e.settle()
	for _, d := range ds {
		res, err := e.sender.Send(e.ctx, d)
		require.NoError(t, err)
		require.Contains(t, string(res.Body), `"duplicate":true`)
	}
	require.Zero(t, e.health().Backlog)
	require.Equal(t, []string{"edited"}, e.strings1("SELECT body FROM comments WHERE issue_key = '"+keys[1]+"'"))
	require.Equal(t, backfilled(t, e.fake), e.dump())
}

// TestAttachmentAndLinkEvents: attachment_* and issuelink_* bodies name no
// issue key; the server maps them (the stored attachment's issue, both ends
// of the link by id) and refetches those issues.
func TestAttachmentAndLinkEvents(t *testing.T) {
	e := newEnv(t)
	a := e.fake.CreateIssue(jirafake.NewIssue{Summary: "a"})
	b := e.fake.CreateIssue(jirafake.NewIssue{Summary: "b"})
	att := e.fake.Attach(a, jirafake.Customer, "log.txt", "text/plain", []byte("log"))
	e.sync()
	require.Equal(t, []string{"log.txt"}, e.strings1("SELECT filename FROM attachments"))

	e.fake.DeleteAttachment(att, jirafake.Agent)
	e.send(jirafake.Only(e.fake.Deliveries(), "attachment_deleted"))
	e.settle()
	require.Zero(t, e.count("SELECT count(*) FROM attachments"), "found through the stored attachment")

	e.fake.LinkSilently("Blocks", a, b)
	e.send(jirafake.Only(e.fake.Deliveries(), "issuelink_created"))
	e.settle()
	require.Equal(t, []string{a + " " + b, b + " " + a}, e.strings1("SELECT issue_key || ' ' || linked_issue_key FROM issuelinks ORDER BY 1"))
}

// TestJiraOutage: while Jira answers 503, events wait in the inbox and are
// retried with backoff; queries, the catalog and the manifest keep the last
// good state; when Jira is back, the events are applied and nothing is lost.
func TestJiraOutage(t *testing.T) {
	e := newEnv(t)
	key := e.fake.CreateIssue(jirafake.NewIssue{Summary: "before"})
	e.sync()
	m := e.manifest()

	e.fake.Update(key, jirafake.Agent, map[string]any{"summary": "during"})
	created := e.fake.CreateIssue(jirafake.NewIssue{Summary: "created during"})
	e.fake.Inject(jirafake.RouteIssue, jirafake.Fault{Times: 100000, Status: http.StatusServiceUnavailable, RetryAfter: "1"})
	e.send(e.fake.Deliveries())
	e.waitRetrying(2)
	h := e.health()
	require.Equal(t, "backlog", h.Status)
	require.Equal(t, 2, h.Backlog)
	require.NotNil(t, h.OldestPendingAt)
	require.Equal(t, []string{"before"}, e.strings1("SELECT summary FROM issues"))
	require.Equal(t, m, e.manifest())

	e.fake.ClearFaults(jirafake.RouteIssue)
	e.settle()
	require.Equal(t, []string{"during", "created during"}, e.strings1("SELECT summary FROM issues ORDER BY issue_key"))
	require.Equal(t, []string{key, created}, e.strings1("SELECT issue_key FROM issues ORDER BY issue_key"))
	require.NotEqual(t, m["issues"], e.manifest()["issues"])
	require.Equal(t, "ok", e.health().Status)
}

// TestRestartProcessesPendingEvents: the server stops while an apply job is
// inside a refetch (Jira hangs); the acknowledged events stay in the inbox,
// and a new server process on the same data directory processes them.
func TestRestartProcessesPendingEvents(t *testing.T) {
	f := newFake(t)
	srcs := sources(f)
	e := newEnvWith(t, f, srcs)
	key := f.CreateIssue(jirafake.NewIssue{Summary: "seen"})
	e.sync()

	hang := make(chan struct{})
	entered := make(chan struct{}, 1)
	f.Inject(jirafake.RouteIssue, jirafake.Fault{Do: func() {
		entered <- struct{}{}
		<-hang
	}})
	f.Update(key, jirafake.Agent, map[string]any{"summary": "acknowledged before the stop"})
	other := f.CreateIssue(jirafake.NewIssue{Summary: "new before the stop"})
	e.send(f.Deliveries())
	<-entered // the apply job is waiting on Jira
	require.Equal(t, 2, e.health().Backlog)

	e.restart(filepath.Join(e.srv.DataDir), srcs)
	close(hang)
	e.settle()
	require.Equal(t, []string{key + " acknowledged before the stop", other + " new before the stop"},
		e.strings1("SELECT issue_key || ' ' || summary FROM issues ORDER BY issue_key"))
	require.Zero(t, e.health().Backlog)
}

// TestConsistencyRepair: webhooks that never arrived (a creation, an update,
// a deletion) are found by the check's JQL search and repaired.
func TestConsistencyRepair(t *testing.T) {
	e := newEnv(t)
	var keys []string
	for range 4 {
		keys = append(keys, e.fake.CreateIssue(jirafake.NewIssue{Summary: "seen"}))
	}
	e.sync()
	lost := e.fake.CreateIssue(jirafake.NewIssue{Summary: "created, webhook lost"})
	e.fake.Update(keys[0], jirafake.Agent, map[string]any{"summary": "updated, webhook lost"})
	e.fake.DeleteIssue(keys[1], jirafake.Agent)
	e.fake.Deliveries() // dropped
	e.fake.Advance(10 * time.Minute)

	id, err := e.app.Jira.Check(e.ctx, "")
	require.NoError(t, err)
	j := e.waitJob(id)
	require.Equal(t, "succeeded", j.State, j.Error)
	progress := string(j.Progress)
	for _, want := range []string{`"missing":["` + lost + `"]`, `"outdated":["` + keys[0] + `"]`, `"gone":["` + keys[1] + `"]`} {
		require.Contains(t, progress, want)
	}
	require.ElementsMatch(t, []string{"updated, webhook lost", "seen", "seen", "created, webhook lost"}, e.strings1("SELECT summary FROM issues"))
	require.Equal(t, backfilled(t, e.fake), e.dump())

	_, err = e.app.Jira.Check(e.ctx, "nope")
	require.ErrorContains(t, err, `"nope"`)
}

// TestSLAPollHeals: SLA clocks run without webhooks, so the poll refreshes
// open issues' SLA column; a ticket resolved while its webhook was lost is
// healed; one deleted meanwhile is removed.
func TestSLAPollHeals(t *testing.T) {
	e := newEnv(t)
	open := e.fake.CreateIssue(jirafake.NewIssue{Summary: "waiting"})
	resolved := e.fake.CreateIssue(jirafake.NewIssue{Summary: "quietly resolved"})
	gone := e.fake.CreateIssue(jirafake.NewIssue{Summary: "deleted"})
	for _, k := range []string{open, resolved, gone} {
		e.fake.SetSLA(k, slaField, time.Minute, 4*time.Hour)
	}
	e.sync()
	elapsed := func(k string) string {
		return e.strings1("SELECT json_extract_string(" + slaColumn + ", '$.ongoingCycle.elapsedTime.millis') FROM issues WHERE issue_key = '" + k + "'")[0]
	}
	require.Equal(t, "60000", elapsed(open))

	e.fake.Advance(time.Hour)
	e.fake.SetSLA(open, slaField, 61*time.Minute, 4*time.Hour)
	e.fake.Transition(resolved, jirafake.Agent, "Done")
	e.fake.DeleteIssue(gone, jirafake.Agent)
	e.fake.Deliveries() // lost

	id, err := e.app.Jira.Poll(e.ctx, "")
	require.NoError(t, err)
	j := e.waitJob(id)
	require.Equal(t, "succeeded", j.State, j.Error)
	require.Contains(t, string(j.Progress), `"healed":["`+resolved+`"]`)
	require.Equal(t, "3660000", elapsed(open))
	require.Equal(t, [][]any{{"Done", "Done"}}, e.query("SELECT status_category, resolution FROM issues WHERE issue_key = '"+resolved+"'"))
	require.Zero(t, e.count("SELECT count(*) FROM issues WHERE issue_key = '"+gone+"'"))
	require.Equal(t, backfilled(t, e.fake), e.dump(), "what the poll wrote equals a fresh fetch")

	// Jira down: the poll ends partial, the tables stay.
	e.fake.Inject(jirafake.RouteIssue, jirafake.Fault{Times: 100000, Status: http.StatusBadRequest})
	id, err = e.app.Jira.Poll(e.ctx, "")
	require.NoError(t, err)
	j = e.waitJob(id)
	require.Equal(t, "partial", j.State)
	require.True(t, strings.Contains(j.Error, "could not be asked"), j.Error)
	require.Equal(t, "3660000", elapsed(open))
}
