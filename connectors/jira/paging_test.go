package jira_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/jira"
	"github.com/agnesdata/agnes/connectors/jira/jirafake"
)

// TestManyCommentsWith429MidWalk: an issue with 250 comments (the issue
// GET embeds only the newest 100) is completed by paging /comment; a 429
// on the second page is waited out for its Retry-After and the walk
// completes. A 429 that outlasts the retries fails the refetch (never a
// partial thread) and the stored rows stay as they were.
func TestManyCommentsWith429MidWalk(t *testing.T) {
	e := newEnv(t)
	key := e.fake.CreateIssue(jirafake.NewIssue{Summary: "Busy thread"})
	e.fake.AddComments(key, jirafake.Customer, 250)
	e.fake.Inject(jirafake.RouteComments, jirafake.Fault{Skip: 1, Status: http.StatusTooManyRequests, RetryAfter: "7"})
	e.sync()
	require.EqualValues(t, 250, e.count("SELECT count(*) FROM comments WHERE issue_key = ?", key))
	require.EqualValues(t, 250, e.count("SELECT comment_count FROM issues WHERE issue_key = ?", key))
	require.Equal(t, []string{"comment 1", "comment 250"}, e.strings1(
		"SELECT body FROM comments WHERE body IN ('comment 1', 'comment 250') ORDER BY created_at"))
	require.Equal(t, 4, e.fake.Hits(jirafake.RouteComments), "3 pages and one retry")
	require.Equal(t, []time.Duration{7 * time.Second}, e.slept(), "Retry-After honoured")

	// More comments, and Jira keeps answering 429: the refetch fails as
	// retryable and nothing of the issue is rewritten.
	e.fake.AddComment(key, jirafake.Agent, "one more", true)
	e.fake.Inject(jirafake.RouteComments, jirafake.Fault{Skip: 1, Times: 100, Status: http.StatusTooManyRequests})
	require.NoError(t, e.sender.SendAll(e.ctx, e.fake.Deliveries()))
	keys, err := e.st.KeysFor(e.ctx, e.drain())
	require.NoError(t, err)
	changes, err := e.st.Refetch(e.ctx, keys)
	require.Error(t, err)
	require.True(t, jira.Retryable(err), "%v", err)
	require.Empty(t, changes)
	var fe *jira.FetchError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, []string{key}, fe.Keys())
	require.EqualValues(t, 250, e.count("SELECT count(*) FROM comments WHERE issue_key = ?", key), "stored rows preserved")

	// Jira recovers: the retried event completes the thread.
	e.fake.ClearFaults(jirafake.RouteComments)
	changes, err = e.st.Refetch(e.ctx, []string{key})
	require.NoError(t, err)
	e.apply(changes)
	require.EqualValues(t, 251, e.count("SELECT count(*) FROM comments WHERE issue_key = ?", key))
}

// TestCommentDeletedMidWalk: a comment deleted while the thread is paged
// shifts the offsets; the walk notices the total moved and starts over,
// so no comment is skipped and the deleted one is not kept.
func TestCommentDeletedMidWalk(t *testing.T) {
	e := newEnv(t)
	key := e.fake.CreateIssue(jirafake.NewIssue{Summary: "Shifting thread"})
	e.fake.AddComments(key, jirafake.Customer, 150)
	e.fake.Deliveries()
	victim := e.fake.CommentIDs(key)[10]
	e.fake.Inject(jirafake.RouteComments, jirafake.Fault{Skip: 1, Do: func() { e.fake.DeleteComment(key, victim) }})
	changes, err := e.st.Refetch(e.ctx, []string{key})
	require.NoError(t, err)
	e.apply(changes)
	require.EqualValues(t, 149, e.count("SELECT count(*) FROM comments WHERE issue_key = ?", key))
	require.Zero(t, e.count("SELECT count(*) FROM comments WHERE comment_id = ?", victim))
	require.EqualValues(t, 149, e.count("SELECT count(DISTINCT comment_id) FROM comments"))
}

// TestFullChangelog: more than 100 histories are paged from /changelog,
// not cut at the newest 100 the issue GET embeds.
func TestFullChangelog(t *testing.T) {
	e := newEnv(t)
	key := e.fake.CreateIssue(jirafake.NewIssue{Summary: "Long history"})
	for i := range 130 {
		e.fake.Update(key, jirafake.Agent, map[string]any{"summary": "v" + string(rune('a'+i%26))})
	}
	e.sync()
	require.EqualValues(t, 130, e.count("SELECT count(DISTINCT change_id) FROM changelog WHERE issue_key = ?", key))
	require.Equal(t, 2, e.fake.Hits(jirafake.RouteChangelog))
}

// TestRemoteLinks5xxVs404: a 5xx is retried; a 5xx that outlasts the
// retries fails the refetch and leaves remote_links as stored; a 403
// keeps the stored remote links while the rest of the issue updates; a
// 404 means there are none, and clears them.
func TestRemoteLinks5xxVs404(t *testing.T) {
	e := newEnv(t)
	key := e.fake.CreateIssue(jirafake.NewIssue{Summary: "Linked out"})
	e.fake.AddRemoteLink(key, "https://wiki.example.com/a", "Runbook")
	e.fake.Inject(jirafake.RouteRemoteLink, jirafake.Fault{Status: http.StatusBadGateway})
	e.sync()
	require.Equal(t, []string{"Runbook"}, e.strings1("SELECT title FROM remote_links"))
	require.Len(t, e.slept(), 1, "one backoff before the retry")

	e.fake.Update(key, jirafake.Agent, map[string]any{"summary": "Linked out, still"})
	e.fake.Inject(jirafake.RouteRemoteLink, jirafake.Fault{Times: 100, Status: http.StatusServiceUnavailable})
	require.NoError(t, e.sender.SendAll(e.ctx, e.fake.Deliveries()))
	keys, err := e.st.KeysFor(e.ctx, e.drain())
	require.NoError(t, err)
	_, err = e.st.Refetch(e.ctx, keys)
	require.True(t, jira.Retryable(err), "%v", err)
	require.Equal(t, []string{"Linked out"}, e.strings1("SELECT summary FROM issues"), "nothing half-applied")
	require.Equal(t, []string{"Runbook"}, e.strings1("SELECT title FROM remote_links"))

	e.fake.ClearFaults(jirafake.RouteRemoteLink)
	e.fake.Inject(jirafake.RouteRemoteLink, jirafake.Fault{Status: http.StatusForbidden})
	changes, err := e.st.Refetch(e.ctx, []string{key})
	require.NoError(t, err)
	e.apply(changes)
	require.Equal(t, []string{"Linked out, still"}, e.strings1("SELECT summary FROM issues"))
	require.Equal(t, []string{"Runbook"}, e.strings1("SELECT title FROM remote_links"), "403: unknown, kept")

	e.fake.Inject(jirafake.RouteRemoteLink, jirafake.Fault{Status: http.StatusNotFound})
	changes, err = e.st.Refetch(e.ctx, []string{key})
	require.NoError(t, err)
	e.apply(changes)
	require.Zero(t, e.count("SELECT count(*) FROM remote_links"), "404: none")
	require.EqualValues(t, 1, e.count("SELECT count(*) FROM issues"))
}
