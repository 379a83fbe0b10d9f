package jira_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/jira"
	"github.com/agnesdata/agnes/connectors/jira/jirafake"
)

var lastMonth = jira.Window{From: 30 * 24 * time.Hour, To: 5 * time.Minute}

// TestConsistencyRepair: webhooks that never arrived (a creation, an
// update, a deletion) are found by a JQL search over the window and
// repaired by refetching, at most limit per run; the rest is reported
// and repaired by the next run.
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

	d, err := e.st.Check(e.ctx, lastMonth)
	require.NoError(t, err)
	require.Equal(t, []string{lost}, d.Missing)
	require.Equal(t, []string{keys[0]}, d.Outdated)
	require.Equal(t, []string{keys[1]}, d.Gone)

	rep, err := e.st.Repair(e.ctx, e.w, lastMonth, 2)
	require.NoError(t, err)
	require.Equal(t, []string{lost, keys[0]}, rep.Repaired)
	require.Equal(t, []string{keys[1]}, rep.Unrepaired, "over the limit: left for the next run")
	require.NoError(t, e.w.Update(e.ctx, rep.Result.Tables...))

	rep, err = e.st.Repair(e.ctx, e.w, lastMonth, 2)
	require.NoError(t, err)
	require.Equal(t, []string{keys[1]}, rep.Repaired)
	require.Equal(t, []string{keys[1]}, rep.Result.Deleted)
	require.NoError(t, e.w.Update(e.ctx, rep.Result.Tables...))

	d, err = e.st.Check(e.ctx, lastMonth)
	require.NoError(t, err)
	require.Empty(t, d.Keys())
	require.Equal(t, dump(t, backfill(t, e)), dump(t, e.dir))
	require.ElementsMatch(t, []string{"updated, webhook lost", "seen", "seen", "created, webhook lost"}, e.strings1("SELECT summary FROM issues"))
}

// TestSLAPoll: SLA clocks run without webhooks, so the poll refreshes
// the SLA column of open issues (only that column); a ticket resolved
// while its webhook was lost is healed by a full refetch; a ticket
// deleted meanwhile is tombstoned.
func TestSLAPoll(t *testing.T) {
	e := newEnv(t)
	open := e.fake.CreateIssue(jirafake.NewIssue{Summary: "waiting"})
	resolved := e.fake.CreateIssue(jirafake.NewIssue{Summary: "quietly resolved"})
	gone := e.fake.CreateIssue(jirafake.NewIssue{Summary: "deleted"})
	done := e.fake.CreateIssue(jirafake.NewIssue{Summary: "done already"})
	for _, k := range []string{open, resolved, gone, done} {
		e.fake.SetSLA(k, slaField, time.Minute, 4*time.Hour)
	}
	e.fake.Transition(done, jirafake.Agent, "Done")
	e.sync()
	elapsed := func(k string) string {
		return e.query("SELECT json_extract_string("+slaColumn+", '$.ongoingCycle.elapsedTime.millis') FROM issues WHERE issue_key = ?", k)[0][0].(string)
	}
	require.Equal(t, "60000", elapsed(open))

	e.fake.Advance(time.Hour)
	e.fake.SetSLA(open, slaField, 61*time.Minute, 4*time.Hour)
	e.fake.Transition(resolved, jirafake.Agent, "Done")
	e.fake.DeleteIssue(gone, jirafake.Agent)
	e.fake.Deliveries() // lost

	before := e.fake.Hits(jirafake.RouteIssue)
	changes, rep, err := e.st.PollSLA(e.ctx)
	require.NoError(t, err)
	require.Equal(t, 3, rep.Checked, "Done issues are not polled")
	require.Equal(t, []string{open}, rep.Refreshed)
	require.Equal(t, []string{resolved}, rep.Healed)
	require.Equal(t, []string{gone}, rep.Deleted)
	require.Equal(t, 4, e.fake.Hits(jirafake.RouteIssue)-before, "3 light GETs and one full refetch")
	res := e.apply(changes)
	require.Equal(t, []string{open}, res.Refreshed)
	require.Equal(t, []string{resolved}, res.Upserted)
	require.Equal(t, []string{gone}, res.Deleted)

	require.Equal(t, "3660000", elapsed(open))
	require.Equal(t, [][]any{{"Done", "Done"}}, e.query("SELECT status_category, resolution FROM issues WHERE issue_key = ?", resolved))
	require.Zero(t, e.count("SELECT count(*) FROM issues WHERE issue_key = ?", gone))
	require.Equal(t, dump(t, backfill(t, e)), dump(t, e.dir), "the refreshed row equals a fresh fetch")

	// Nothing moved: nothing to write.
	changes, rep, err = e.st.PollSLA(e.ctx)
	require.NoError(t, err)
	require.Empty(t, changes)
	require.Equal(t, 1, rep.Checked)

	// Jira down: the poll reports the failures, the tables stay.
	e.fake.Inject(jirafake.RouteIssue, jirafake.Fault{Times: 100, Status: http.StatusInternalServerError})
	_, rep, err = e.st.PollSLA(e.ctx)
	require.Error(t, err)
	require.True(t, jira.Retryable(err))
	require.Contains(t, rep.Failed, open)
}

// TestSLAWithoutPermission: an account without a JSM agent licence sees
// {"errorMessage": ...}; it is stored verbatim so analysts see why.
func TestSLAWithoutPermission(t *testing.T) {
	e := newEnv(t)
	k := e.fake.CreateIssue(jirafake.NewIssue{Summary: "sla"})
	e.fake.SetSLA(k, slaField, time.Minute, time.Hour)
	e.fake.DenySLA(true)
	e.sync()
	require.Contains(t, e.strings1("SELECT " + slaColumn + " FROM issues")[0], `{"errorMessage": "You do not have permission`)
}

// TestBackfillEqualsIncremental: a backfill over several search pages
// (with a 429 in the middle) equals the state built from webhooks, and so
// do the one-table Extracts of the Connector interface.
func TestBackfillEqualsIncremental(t *testing.T) {
	e := newEnv(t)
	var keys []string
	for i := range 130 {
		k := e.fake.CreateIssue(jirafake.NewIssue{Summary: "bulk", Assignee: &jirafake.Private})
		keys = append(keys, k)
		if i%40 == 0 {
			e.fake.AddComments(k, jirafake.Customer, 120)
			e.fake.AddRemoteLink(k, "https://docs.example.com/x", "Doc")
			e.fake.Attach(k, jirafake.Agent, "log.txt", "text/plain", []byte("log"))
			e.fake.Link("Blocks", k, keys[0], jirafake.Agent)
		}
		if i%50 == 0 {
			e.fake.Advance(40 * 24 * time.Hour) // spread over months
		}
	}
	e.sync()
	require.EqualValues(t, 130, e.count("SELECT count(*) FROM issues"))
	require.Equal(t, []string{"2026-01", "2026-03", "2026-04", "2026-06"}, partsOf(t, e.dir, "issues"))
	require.Zero(t, e.count("SELECT count(*) FROM issues WHERE assignee_email IS NOT NULL"), "hidden emails are NULL")
	require.EqualValues(t, 130, e.count("SELECT count(*) FROM issues WHERE assignee_name = 'Pat Private'"))

	e.fake.Inject(jirafake.RouteSearch, jirafake.Fault{Skip: 1, Status: http.StatusTooManyRequests, RetryAfter: "Wed, 21 Oct 2015 07:28:00 GMT"})
	var progress [][2]int
	dir := t.TempDir() + "/jira"
	w := mustWriter(t, dir)
	st, err := e.src.OpenStore(dir)
	require.NoError(t, err)
	defer st.Close()
	res, err := st.Backfill(e.ctx, w, jira.BackfillOptions{BatchSize: 50, Progress: func(d, n int) { progress = append(progress, [2]int{d, n}) }})
	require.NoError(t, err)
	require.NoError(t, w.Update(e.ctx, res.Tables...))
	require.Equal(t, [][2]int{{50, 130}, {100, 130}, {130, 130}}, progress)
	require.Equal(t, 3, e.fake.Hits(jirafake.RouteSearch), "two pages of 100 and a retried 429")
	require.Len(t, res.Tables, 6)
	require.Equal(t, dump(t, dir), dump(t, e.dir))

	// The Connector's per-table Extract gives the same rows.
	dir2 := t.TempDir() + "/jira"
	e.fullSync(dir2)
	require.Equal(t, dump(t, dir), dump(t, dir2))
}
