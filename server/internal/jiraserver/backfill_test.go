package jiraserver_test

import (
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/jira/jirafake"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// backfilled loads the fake's project into a fresh server through the
// backfill RPC, without any webhook, and returns that server's tables.
func backfilled(t *testing.T, f *jirafake.Fake) map[string][]string {
	t.Helper()
	b := newEnvWith(t, f, sources(f))
	c := b.jiraClient(ts.Connect, b.admin)
	res, err := c.StartJiraBackfill(b.ctx, &agnesv1.StartJiraBackfillRequest{Project: "SUP"})
	require.NoError(t, err)
	done := b.waitBackfill(c, res.GetBackfill().GetJobId())
	require.Equal(t, agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, done.GetState(), done.GetError())
	return b.dump()
}

// TestBackfillEqualsIncremental: what webhooks built issue by issue equals
// a backfill of the same site; the backfill reports its progress through
// every protocol, publishes batch by batch, refuses bad input and a second
// backfill of the source while one runs.
func TestBackfillEqualsIncremental(t *testing.T) {
	e := newEnv(t)
	var keys []string
	for i := range 130 { // more than one batch and one search page
		k := e.fake.CreateIssue(jirafake.NewIssue{Summary: "Ticket", Priority: []string{"High", "Low"}[i%2]})
		keys = append(keys, k)
		if i%10 == 0 {
			e.fake.AddComment(k, jirafake.Customer, "hello", true)
			e.fake.AddRemoteLink(k, "https://wiki.example.com/x", "x")
		}
		if i%40 == 0 {
			e.fake.Advance(40 * 24 * time.Hour) // several months
		}
	}
	e.fake.Transition(keys[0], jirafake.Agent, "Done")
	e.fake.Link("Blocks", keys[1], keys[2], jirafake.Agent)
	e.fake.DeleteIssue(keys[3], jirafake.Agent)
	e.sync()
	incremental := e.dump()
	require.Len(t, incremental["issues"], 129)

	// A second server loads the same site by backfill only.
	b := newEnvWith(t, e.fake, sources(e.fake))
	for _, p := range []ts.Protocol{ts.Connect, ts.GRPC} {
		c := b.jiraClient(p, b.admin)
		_, err := c.StartJiraBackfill(b.ctx, &agnesv1.StartJiraBackfillRequest{})
		require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "project is required")
		_, err = c.StartJiraBackfill(b.ctx, &agnesv1.StartJiraBackfillRequest{Project: "sup"})
		require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
		_, err = c.StartJiraBackfill(b.ctx, &agnesv1.StartJiraBackfillRequest{Project: "SUP", Since: "2026-13-01"})
		require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
		_, err = c.StartJiraBackfill(b.ctx, &agnesv1.StartJiraBackfillRequest{Project: "SUP", Source: "other"})
		require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
		_, err = c.GetJiraBackfill(b.ctx, &agnesv1.GetJiraBackfillRequest{JobId: "nope"})
		require.Equal(t, connect.CodeNotFound, connect.CodeOf(err))
		_, err = b.jiraClient(p, b.srv.UserToken).StartJiraBackfill(b.ctx, &agnesv1.StartJiraBackfillRequest{Project: "SUP"})
		require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err))
	}

	// The search hangs until released: a second start meanwhile is refused.
	release := make(chan struct{})
	e.fake.Inject(jirafake.RouteSearch, jirafake.Fault{Do: func() { <-release }})
	res := b.rest(http.MethodPost, "/api/admin/jira/backfill", b.admin, map[string]any{"project": "SUP", "since": "2020-01-01"})
	require.Equal(t, http.StatusAccepted, res.Status, "%s", res.Body)
	var started struct {
		Backfill struct {
			JobID   string `json:"job_id"`
			State   string `json:"state"`
			Project string `json:"project"`
		} `json:"backfill"`
	}
	res.JSON(t, &started)
	require.Equal(t, "SUP", started.Backfill.Project)
	c := b.jiraClient(ts.GRPC, b.admin)
	_, err := c.StartJiraBackfill(b.ctx, &agnesv1.StartJiraBackfillRequest{Project: "SUP"})
	require.Equal(t, connect.CodeAlreadyExists, connect.CodeOf(err), "one backfill per source at a time")
	close(release)
	done := b.waitBackfill(c, started.Backfill.JobID)
	require.Equal(t, agnesv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, done.GetState(), done.GetError())
	require.EqualValues(t, 129, done.GetTotal())
	require.EqualValues(t, 129, done.GetDone())
	require.EqualValues(t, 129, done.GetUpserted())
	require.Empty(t, done.GetFailed())
	require.Equal(t, "admin@example.com", done.GetCreatedBy())
	require.NotNil(t, done.GetFinishedAt())
	res = b.rest(http.MethodGet, "/api/admin/jira/backfill/"+started.Backfill.JobID, b.admin, nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Contains(t, string(res.Body), `"state":"SYNC_JOB_STATE_SUCCEEDED"`)

	require.Equal(t, incremental, b.dump())
	h := b.health()
	require.EqualValues(t, 1, h.Rebuilds, "batches after the first publish without a rebuild")
	require.GreaterOrEqual(t, h.Publishes, int64(2))
}
