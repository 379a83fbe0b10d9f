package jira_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/connectors/jira/jirafake"
)

// TestCreateUpdateDelete drives the six tables through signed webhooks:
// rows appear in the month of created in Jira's offset, are replaced on
// update, and disappear from every table on delete, also when a late
// duplicate issue_updated arrives afterwards.
func TestCreateUpdateDelete(t *testing.T) {
	e := newEnv(t)
	// The fake's clock starts at 2026-01-31T23:30-05:00: created is
	// 23:31 in January in Jira's offset, February in UTC.
	key := e.fake.CreateIssue(jirafake.NewIssue{Summary: "Export fails", Description: "Steps in runbook",
		Assignee: &jirafake.Agent, Labels: []string{"export", "p1"},
		Fields: map[string]any{"customfield_10004": map[string]any{"value": "Medium"}}})
	other := e.fake.CreateIssue(jirafake.NewIssue{Summary: "Upgrade exporter"})
	e.fake.SetSLA(key, slaField, 2*time.Minute, 4*time.Hour)
	e.fake.AddComment(key, jirafake.Agent, "Looking into it", false)
	e.fake.Attach(key, jirafake.Customer, "image.png", "image/png", []byte("png-bytes"))
	e.fake.Link("Blocks", key, other, jirafake.Agent)
	e.fake.AddRemoteLink(key, "https://wiki.example.com/pages/123?token=abc", "Exporter runbook")
	res := e.sync()
	require.ElementsMatch(t, []string{key, other}, res.Upserted)

	for _, tbl := range []string{"issues", "comments", "attachments", "changelog", "issuelinks", "remote_links"} {
		parts, err := filepath.Glob(filepath.Join(e.dir, extract.DataDir, tbl, "*.parquet"))
		require.NoError(t, err)
		require.Equal(t, []string{filepath.Join(e.dir, extract.DataDir, tbl, "2026-01.parquet")}, parts, tbl)
	}
	rep, err := extract.Validate(e.dir)
	require.NoError(t, err, "%v", rep.Problems)

	row := e.query(`SELECT summary, description, status, status_category, assignee_email, created_at, labels,
		attachment_count, issuelink_count, comment_count, severity, `+slaColumn+`, issue_url
		FROM issues WHERE issue_key = ?`, key)
	require.Len(t, row, 1)
	require.Equal(t, "Export fails", row[0][0])
	require.Equal(t, "Steps in runbook", row[0][1])
	require.Equal(t, "To Do", row[0][2])
	require.Equal(t, "To Do", row[0][3])
	require.Equal(t, "ann@acme.com", row[0][4])
	require.Equal(t, time.Date(2026, 2, 1, 4, 31, 0, 0, time.UTC), row[0][5].(time.Time).UTC(), "UTC, fraction stripped")
	require.Equal(t, `["export", "p1"]`, row[0][6])
	require.Equal(t, []any{int64(1), int64(1), int64(1)}, row[0][7:10])
	require.Equal(t, "Medium", row[0][10])
	require.Contains(t, row[0][11], `"elapsedTime": {"friendly": "2m0s", "millis": 120000}`, "verbatim JSON, Python's separators")
	require.Equal(t, "120000", e.query("SELECT json_extract_string("+slaColumn+", '$.ongoingCycle.elapsedTime.millis') FROM issues WHERE issue_key = ?", key)[0][0])
	require.Equal(t, e.fake.URL()+"/browse/"+key, row[0][12])

	require.Equal(t, []any{"Looking into it", false}, e.query("SELECT body, public_visibility FROM comments WHERE issue_key = ?", key)[0])
	require.Equal(t, []any{"image.png", int64(9), "image/png", nil}, e.query("SELECT filename, size_bytes, mime_type, local_path FROM attachments")[0])
	require.Equal(t, [][]any{{key, "outward", other}, {other, "inward", key}},
		e.query("SELECT issue_key, direction, linked_issue_key FROM issuelinks ORDER BY issue_key"))
	require.Equal(t, [][]any{{"https://wiki.example.com/pages/123?token=abc", "Exporter runbook", "Confluence"}},
		e.query("SELECT url, title, application_name FROM remote_links"))
	require.Equal(t, []string{"Attachment", "Link"}, e.strings1("SELECT field_name FROM changelog WHERE issue_key = ? ORDER BY changed_at", key))

	// Update: the rows are replaced, not added.
	e.fake.Transition(key, jirafake.Agent, "Done")
	e.sync()
	require.Equal(t, [][]any{{"Done", "Done", "Done"}}, e.query("SELECT status, status_category, resolution FROM issues WHERE issue_key = ?", key))
	require.EqualValues(t, 2, e.count("SELECT count(*) FROM issues"))
	require.Equal(t, []string{"Attachment", "Link", "status", "resolution"},
		e.strings1("SELECT field_name FROM changelog WHERE issue_key = ? ORDER BY changed_at, field_name = 'resolution'", key))

	// Delete: jira:issue_deleted (Primary) and its cascade (Secondary,
	// comment/attachment/issuelink events).
	late := jirafake.Only(e.fake.Deliveries(), "jira:issue_updated") // nothing pending: keep a real body
	require.Empty(t, late)
	e.fake.Update(key, jirafake.Agent, map[string]any{"summary": "Export fails (again)"})
	late = e.fake.Deliveries()
	e.fake.DeleteIssue(key, jirafake.Agent)
	res = e.sync()
	require.Contains(t, res.Deleted, key)
	for _, tbl := range []string{"issues", "comments", "attachments", "changelog", "remote_links"} {
		require.Zero(t, e.count("SELECT count(*) FROM "+tbl+" WHERE issue_key = ?", key), tbl)
	}
	require.Zero(t, e.count("SELECT count(*) FROM issuelinks"), "the other end was refetched through the issuelink_deleted ids")
	require.EqualValues(t, 1, e.count("SELECT count(*) FROM issues"))
	_, err = os.Stat(filepath.Join(e.dir, "tombstones", key+".json"))
	require.NoError(t, err, "the deletion is tombstoned")

	// A late issue_updated (sent before the delete, arriving after it):
	// the refetch says 404, nothing comes back.
	res = e.deliver(late)
	require.Equal(t, []string{key}, res.Deleted)
	require.Empty(t, res.Upserted)
	require.Zero(t, e.count("SELECT count(*) FROM issues WHERE issue_key = ?", key))
	rep, err = extract.Validate(e.dir)
	require.NoError(t, err, "%v", rep.Problems)
}
