package jira_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/jira/jirafake"
)

// A full sync through the connector rewrites the partitions beside the
// store (another Writer): the store's next Apply finds the issues that sync
// wrote, so a deletion removes their rows.
func TestApplyAfterFullSync(t *testing.T) {
	e := newEnv(t)
	a := e.fake.CreateIssue(jirafake.NewIssue{Summary: "seen by a webhook"})
	e.sync()
	e.fake.Update(a, jirafake.Agent, map[string]any{"summary": "updated"})
	e.sync() // the store has looked at a's partitions
	b := e.fake.CreateIssue(jirafake.NewIssue{Summary: "only in the full sync"})
	e.fake.AddComment(b, jirafake.Agent, "a comment", true)
	e.fake.Deliveries() // lost webhooks

	e.fullSync(e.dir)
	require.EqualValues(t, 1, e.count("SELECT count(*) FROM comments WHERE issue_key = ?", b))

	e.fake.Advance(time.Minute)
	e.fake.DeleteIssue(b, jirafake.Agent)
	e.sync()
	require.Equal(t, []string{a}, e.strings1("SELECT issue_key FROM issues"))
	require.Zero(t, e.count("SELECT count(*) FROM comments WHERE issue_key = ?", b))
}
