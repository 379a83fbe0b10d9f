package jira

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors"
)

func TestADFText(t *testing.T) {
	for _, tc := range []struct{ name, adf, want string }{
		{"reference §4 description",
			`{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"Steps in "},{"type":"text","text":"runbook","marks":[{"type":"link","attrs":{"href":"https://wiki.example.com/rb?token=abc"}}]}]}]}`,
			"Steps in runbook (https://wiki.example.com/rb?token=REDACTED)"},
		{"reference §4.1 comment",
			`{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"Fixed in "},{"type":"inlineCard","attrs":{"url":"https://github.com/acme/app/pull/9"}}]}]}`,
			"Fixed in https://github.com/acme/app/pull/9"},
		{"null", `null`, ""},
		{"plain string", `"already text"`, "already text"},
		{"list", `[{"type":"text","text":"a"}, " ", {"type":"text","text":"b"}]`, "a b"},
		{"code block keeps inner newlines",
			`{"type":"doc","content":[{"type":"codeBlock","content":[{"type":"text","text":"\n  x := 1\n  y := 2\n"}]}]}`,
			"x := 1\n  y := 2"},
		{"label is the href", `{"type":"text","text":"https://x.io/a/","marks":[{"type":"link","attrs":{"href":"https://x.io/a"}}]}`, "https://x.io/a"},
		{"label is the href without scheme", `{"type":"text","text":"x.io/a?sig=1","marks":[{"type":"link","attrs":{"href":"https://x.io/a?sig=1"}}]}`, "x.io/a?sig=REDACTED"},
		{"card data url", `{"type":"blockCard","attrs":{"data":{"url":"https://d.io/?api_key=1&q=2#access-token=3"}}}`, "https://d.io/?api_key=REDACTED&q=2#access-token=REDACTED"},
		{"card @id", `{"type":"embedCard","attrs":{"data":{"@id":"https://e.io/x"}}}`, "https://e.io/x"},
		{"mention, emoji, hardBreak, media add nothing",
			`{"type":"paragraph","content":[{"type":"mention","attrs":{"id":"a1","text":"@Ann"}},{"type":"text","text":"hi"},{"type":"hardBreak"},{"type":"emoji","attrs":{"shortName":":smile:"}},{"type":"mediaSingle","content":[{"type":"media","attrs":{"id":"m1"}}]}]}`,
			"hi"},
		{"table cells", `{"type":"table","content":[{"type":"tableRow","content":[{"type":"tableCell","content":[{"type":"paragraph","content":[{"type":"text","text":"a"}]}]},{"type":"tableCell","content":[{"type":"paragraph","content":[{"type":"text","text":"b"}]}]}]}]}`, "a b"},
		{"exact names only", `{"type":"inlineCard","attrs":{"url":"https://x.io/?keyboard=1&key=2&monkey=3&pin=4&code=5&postcode=6"}}`,
			"https://x.io/?keyboard=1&key=REDACTED&monkey=3&pin=REDACTED&code=REDACTED&postcode=6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, ADFText(json.RawMessage(tc.adf)))
		})
	}
}

func TestPyJSON(t *testing.T) {
	got, err := pyJSON(json.RawMessage(`{"b":[1,2.5,{"x":null}],"a":"é\"\n😀","c":true}`))
	require.NoError(t, err)
	require.Equal(t, `{"b": [1, 2.5, {"x": null}], "a": "\u00e9\"\n\ud83d\ude00", "c": true}`, got)
	_, err = pyJSON(json.RawMessage(`{"a":1} x`))
	require.Error(t, err)
	require.Equal(t, `["export", "p1"]`, mustPyJSON([]string{"export", "p1"}))
}

func TestTransformFields(t *testing.T) {
	c, err := Settings{Domain: "acme.atlassian.net", Email: "e", APIToken: connectors.NewSecret("t")}.resolve()
	require.NoError(t, err)
	fields := `{"summary":null,"status":{"name":"Hotovo","statusCategory":{"key":"done","name":"Hotovo"}},
		"created":"2026-01-31T23:30:00.123-0500","resolutiondate":"2026-02-03T12:06:52.829+0100","duedate":"2026-02-10",
		"customfield_10010":{"requestType":{"name":"Report a bug"},"currentStatus":{"status":"Waiting for support"}},
		"customfield_10002":[{"id":7,"name":"Acme Corp"}],"customfield_10004":{"value":"Medium"},
		"customfield_10365":true,"customfield_10323":[{"value":"t1"},{"name":"t2"}],
		"customfield_10156":[{"emailAddress":"p@x.io"},{"accountId":"hidden"}],
		"customfield_10330":{"type":"doc","content":[]},"customfield_10325":"https://x.io","customfield_10157":{"rating":4}}`
	d := &IssueData{ID: "10042", Key: "SUP-42", Fields: json.RawMessage(fields),
		Comments: []Comment{{ID: "1", JSDPublic: json.RawMessage(`"yes"`)}}, CommentTotal: 1}
	r, err := c.transform(d, "")
	require.NoError(t, err)
	require.Equal(t, "2026-01", r.month, "the month in Jira's offset, not UTC")
	require.False(t, r.known[tRemoteLinks], "remote links were not fetched")
	got := map[string]any{}
	for i, col := range fixedColumns[tIssues] {
		got[col.Name] = r.rows[tIssues][0][i]
	}
	require.Nil(t, got["summary"])
	require.Equal(t, "Done", got["status_category"], "by key, whatever the language")
	require.Equal(t, "Hotovo", got["status"])
	require.Equal(t, "https://acme.atlassian.net/browse/SUP-42", got["issue_url"])
	require.Equal(t, "2026-02-10", got["due_date"])
	require.Equal(t, "Report a bug", got["request_type"])
	require.Equal(t, "Waiting for support", got["request_status"])
	require.Equal(t, `["Acme Corp"]`, got["organizations"])
	require.Equal(t, `["7"]`, got["organization_ids"])
	require.Equal(t, "Medium", got["severity"])
	require.Equal(t, "True", got["spam"], "Python's str() of a boolean")
	require.Equal(t, `["t1", "t2"]`, got["triage"])
	require.Equal(t, `["p@x.io"]`, got["participants"])
	require.Nil(t, got["context"], "empty ADF is NULL")
	require.Equal(t, "https://x.io", got["custom_url"])
	require.Equal(t, int64(4), got["satisfaction"])
	require.Equal(t, "[]", got["labels"])
	require.Nil(t, got["_raw_file"])
	require.Nil(t, r.rows[tComments][0][8], "jsdPublic that is not a JSON boolean is NULL")
	require.Len(t, fixedColumns[tIssues], 44)
}
