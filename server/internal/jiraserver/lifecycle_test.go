package jiraserver_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/jira/jirafake"
)

// TestCreateUpdateDelete: signed webhooks from the fake reach the six
// tables through the real server: visible in POST /api/query, the catalog
// and the manifest (a new hash per change) with one generation for the
// first load and none after; an update replaces the issue's rows; a delete
// removes them from every table, and a late issue_updated after the delete
// does not bring them back.
func TestCreateUpdateDelete(t *testing.T) {
	e := newEnv(t)
	gen0 := e.health().Generation
	key := e.fake.CreateIssue(jirafake.NewIssue{Summary: "Export fails", Assignee: &jirafake.Agent})
	other := e.fake.CreateIssue(jirafake.NewIssue{Summary: "Upgrade exporter"})
	e.fake.SetSLA(key, slaField, 2*time.Minute, 4*time.Hour)
	e.fake.AddComment(key, jirafake.Agent, "Looking into it", false)
	e.fake.Attach(key, jirafake.Customer, "image.png", "image/png", []byte("png-bytes"))
	e.fake.Link("Blocks", key, other, jirafake.Agent)
	e.fake.AddRemoteLink(key, "https://wiki.example.com/pages/123", "Exporter runbook")
	e.sync()

	require.Equal(t, [][]any{{key, "Export fails", "To Do", "ann@acme.com"}, {other, "Upgrade exporter", "To Do", nil}},
		e.query("SELECT issue_key, summary, status, assignee_email FROM issues ORDER BY issue_key"))
	require.Equal(t, []string{"Looking into it"}, e.strings1("SELECT body FROM comments"))
	require.Equal(t, []string{"image.png"}, e.strings1("SELECT filename FROM attachments"))
	require.Equal(t, []string{key + " outward " + other, other + " inward " + key},
		e.strings1("SELECT concat_ws(' ', issue_key, direction, linked_issue_key) FROM issuelinks ORDER BY 1"))
	require.Equal(t, []string{"Exporter runbook"}, e.strings1("SELECT title FROM remote_links"))
	require.NotEmpty(t, e.strings1("SELECT field_name FROM changelog"))
	require.Equal(t, "120000", e.strings1("SELECT json_extract_string(" + slaColumn + ", '$.ongoingCycle.elapsedTime.millis') FROM issues WHERE issue_key = '" + key + "'")[0])

	h := e.health()
	require.Equal(t, gen0+1, h.Generation, "the first load adds six views: one generation")
	require.EqualValues(t, 1, h.Rebuilds)
	require.Equal(t, "ok", h.Status)
	require.NotNil(t, h.LastEventAt)
	require.NotNil(t, h.LastProcessedAt)
	m1 := e.manifest()
	for _, tbl := range jiraTables {
		require.NotEmpty(t, m1[tbl], "%s is in the manifest", tbl)
	}
	require.Contains(t, e.catalog("issues"), `"rows":2`)

	// Update: the issue's rows are replaced, not added; a new hash, no rebuild.
	e.fake.Transition(key, jirafake.Agent, "Done")
	e.fake.EditComment(key, e.fake.CommentIDs(key)[0], jirafake.Agent, "Fixed in 2.3")
	e.sync()
	require.Equal(t, [][]any{{"Done", "Done", "Done"}}, e.query("SELECT status, status_category, resolution FROM issues WHERE issue_key = '"+key+"'"))
	require.Equal(t, []string{"Fixed in 2.3"}, e.strings1("SELECT body FROM comments"))
	require.Equal(t, 2, e.count("SELECT count(*) FROM issues"))
	m2 := e.manifest()
	require.NotEqual(t, m1["issues"], m2["issues"])
	require.NotEqual(t, m1["comments"], m2["comments"])
	require.Equal(t, m1["remote_links"], m2["remote_links"], "untouched tables keep their hash")
	h = e.health()
	require.Equal(t, gen0+1, h.Generation, "updates need no new generation")
	require.EqualValues(t, 1, h.Rebuilds)

	// Delete, with its cascade (Secondary flow), then a late duplicate
	// issue_updated of the issue as it was.
	e.fake.Update(key, jirafake.Agent, map[string]any{"summary": "Export fails (again)"})
	late := e.fake.Deliveries()
	e.fake.DeleteIssue(key, jirafake.Agent)
	e.sync()
	e.send(late)
	e.settle()
	for _, tbl := range jiraTables {
		require.Zero(t, e.count("SELECT count(*) FROM "+tbl+" WHERE issue_key = '"+key+"'"), tbl)
	}
	require.Equal(t, []string{other}, e.strings1("SELECT issue_key FROM issues"))
	require.Contains(t, e.catalog("issues"), `"rows":1`, "the catalog follows")
	require.Empty(t, e.strings1("SELECT issue_key FROM issuelinks"), "the other end's link row went with the link")
	require.Equal(t, gen0+1, e.health().Generation)
}
