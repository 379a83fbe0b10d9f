package jira_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/connectors/jira"
	"github.com/agnesdata/agnes/connectors/jira/jirafake"
)

// TestDuplicatesAndReordering: every delivery twice and the whole burst in
// reverse order end in Jira's state, equal to a backfill of the same site;
// the burst costs one Apply.
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
	res := e.deliver(jirafake.Duplicated(jirafake.Reversed(ds)))
	require.ElementsMatch(t, keys[:4], res.Upserted)
	require.Equal(t, []string{keys[4]}, res.Deleted)

	// Jira's retry of the whole burst changes nothing.
	require.NoError(t, e.sender.SendAll(e.ctx, ds))
	require.Empty(t, e.drain(), "duplicates are dropped on X-Atlassian-Webhook-Identifier")

	require.Equal(t, dump(t, backfill(t, e)), dump(t, e.dir))
	require.Equal(t, []string{"edited"}, e.strings1("SELECT body FROM comments WHERE issue_key = ?", keys[1]))
}

// TestStaleChangesNeverWin: a change fetched before the stored data, or
// before the deletion, is stale: applying it later (an older event after a
// newer one, an update after a delete) changes nothing.
func TestStaleChangesNeverWin(t *testing.T) {
	e := newEnv(t)
	key := e.fake.CreateIssue(jirafake.NewIssue{Summary: "old"})
	e.fake.Deliveries()
	old, err := e.st.Refetch(e.ctx, []string{key})
	require.NoError(t, err)
	e.fake.Update(key, jirafake.Agent, map[string]any{"summary": "new"})
	fresh, err := e.st.Refetch(e.ctx, []string{key})
	require.NoError(t, err)

	res := e.apply(fresh)
	require.Equal(t, []string{key}, res.Upserted)
	res = e.apply(old)
	require.Equal(t, []string{key}, res.Stale)
	require.Empty(t, res.Tables, "nothing rewritten")
	require.Equal(t, []string{"new"}, e.strings1("SELECT summary FROM issues"))

	// The same change twice is idempotent.
	e.apply(fresh)
	require.EqualValues(t, 1, e.count("SELECT count(*) FROM issues"))

	// Both in one batch: the later fetch wins whatever the order.
	res = e.apply(append(fresh, old...))
	require.Equal(t, []string{"new"}, e.strings1("SELECT summary FROM issues"))

	// Deleted in Jira; a refetch made before the deletion arrives late.
	e.fake.DeleteIssue(key, jirafake.Agent)
	gone, err := e.st.Refetch(e.ctx, []string{key})
	require.NoError(t, err)
	require.True(t, gone[0].Deleted)
	e.apply(gone)
	res = e.apply(fresh)
	require.Equal(t, []string{key}, res.Stale)
	require.Zero(t, e.count("SELECT count(*) FROM issues"))
	tombs, err := e.st.Tombstoned()
	require.NoError(t, err)
	require.Contains(t, tombs, key)
}

// TestBadChanges: Apply refuses what it cannot have come from a refetch.
func TestBadChanges(t *testing.T) {
	e := newEnv(t)
	_, err := e.st.Apply(e.ctx, e.w, []jira.Change{{Key: "sup-1", Deleted: true}})
	require.ErrorContains(t, err, `"sup-1" is not an issue key`)
	_, err = e.st.Apply(e.ctx, e.w, []jira.Change{{Key: "SUP-1"}})
	require.ErrorContains(t, err, "neither an issue nor a deletion")
	other, err := extract.NewWriter(filepath.Join(t.TempDir(), "other"))
	require.NoError(t, err)
	defer other.Close()
	_, err = e.st.Apply(e.ctx, other, []jira.Change{{Key: "SUP-1", Deleted: true}})
	require.ErrorContains(t, err, "the writer writes")
	_, err = e.st.Refetch(e.ctx, []string{"SUP-1; DROP"})
	require.ErrorContains(t, err, "is not an issue key")
}

// backfill loads the fake's project into a fresh extract and returns its directory.
func backfill(t *testing.T, e *env) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "jira")
	w, err := extract.NewWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	st, err := e.src.OpenStore(dir)
	require.NoError(t, err)
	defer st.Close()
	res, err := st.Backfill(e.ctx, w, jira.BackfillOptions{})
	require.NoError(t, err)
	require.NoError(t, w.Update(e.ctx, res.Tables...))
	return dir
}
