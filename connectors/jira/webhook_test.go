package jira_test

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/jira"
	"github.com/agnesdata/agnes/connectors/jira/jirafake"
)

func TestVerifySignature(t *testing.T) {
	secret := connectors.NewSecret("s3cret")
	body := []byte(`{"webhookEvent":"jira:issue_updated","issue":{"key":"SUP-1"}}`)
	sig := jirafake.Sign("s3cret", body)
	for _, tc := range []struct {
		name   string
		secret connectors.Secret
		body   []byte
		header string
		want   error
	}{
		{"prefixed", secret, body, "sha256=" + sig, nil},
		{"bare hex", secret, body, sig, nil},
		{"upper-case prefix", secret, body, "SHA256=" + sig, nil},
		{"wrong secret", secret, body, "sha256=" + jirafake.Sign("other", body), jira.ErrBadSignature},
		{"body changed by one byte", secret, append([]byte{' '}, body...), "sha256=" + sig, jira.ErrBadSignature},
		{"missing", secret, body, "", jira.ErrBadSignature},
		{"not hex", secret, body, "sha256=zz", jira.ErrBadSignature},
		{"truncated", secret, body, "sha256=" + sig[:40], jira.ErrBadSignature},
		{"other algorithm", secret, body, "sha1=" + sig, jira.ErrBadSignature},
		{"no secret configured", connectors.Secret{}, body, "sha256=" + sig, jira.ErrNoSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := jira.VerifySignature(tc.secret, tc.body, tc.header)
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
				require.NotContains(t, err.Error(), "s3cret")
			}
		})
	}
	h := http.Header{}
	h.Set("X-Hub-Signature", "sha256=a")
	h.Set("X-Hub-Signature-256", "sha256=b")
	require.Equal(t, "sha256=b", jira.SignatureHeader(h), "X-Hub-Signature-256 first")
}

// TestReceiverSignatures drives the harness receiver with the fake's
// sender in every signing mode: only good signatures are queued.
func TestReceiverSignatures(t *testing.T) {
	e := newEnv(t)
	e.fake.CreateIssue(jirafake.NewIssue{Summary: "signed"})
	d := e.fake.Deliveries()[0]
	for mode, want := range map[jirafake.Signing]int{
		jirafake.SignPrefixed: 200, jirafake.SignBareHex: 200, jirafake.SignHeader256: 200,
		jirafake.SignWrong: 401, jirafake.SignNone: 401,
	} {
		s := *e.sender
		s.Signing = mode
		res, err := s.Send(e.ctx, d)
		require.NoError(t, err)
		require.Equal(t, want, res.Status, "mode %d: %s", mode, res.Body)
		require.Equal(t, 1, res.Attempts, "4xx is not retried")
	}
	require.Len(t, e.drain(), 1, "three good deliveries of one id, queued once")

	// Without a secret the receiver fails closed.
	e.src = e.newSource(jira.Settings{BaseURL: e.fake.URL(), Email: "x@y.z", APIToken: connectors.NewSecret("t")})
	res, err := e.sender.Send(e.ctx, d)
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, res.Status)
	require.Equal(t, 1, res.Attempts, "Jira would retry a 503; the sender here has no retries")
}

func TestParseEvent(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       jira.Event
		err        string
	}{
		{name: "issue updated", body: `{"timestamp":1770113212829,"webhookEvent":"jira:issue_updated","issue":{"id":"10042","key":"SUP-42"}}`,
			want: jira.Event{Name: "jira:issue_updated", IssueKey: "SUP-42", IssueID: "10042"}},
		{name: "issue_key fallback", body: `{"webhookEvent":"jira:issue_deleted","issue":null,"issue_key":"SUP-7"}`,
			want: jira.Event{Name: "jira:issue_deleted", IssueKey: "SUP-7"}},
		{name: "comment", body: `{"webhookEvent":"comment_created","comment":{"id":"1"},"issue":{"id":"1","key":"AB2-1"}}`,
			want: jira.Event{Name: "comment_created", IssueKey: "AB2-1", IssueID: "1"}},
		{name: "attachment without issue", body: `{"webhookEvent":"attachment_created","attachment":{"id":56340,"filename":"a.png"}}`,
			want: jira.Event{Name: "attachment_created", AttachmentID: "56340"}},
		{name: "issuelink ids", body: `{"webhookEvent":"issuelink_created","issueLink":{"id":10231,"sourceIssueId":10042,"destinationIssueId":"10050"}}`,
			want: jira.Event{Name: "issuelink_created", LinkID: "10231", LinkIssueIDs: []string{"10042", "10050"}}},
		{name: "empty", body: "  ", err: "empty body"},
		{name: "not JSON", body: "{", err: "not a JSON object"},
		{name: "array", body: "[1]", err: "not a JSON object"},
		{name: "empty object", body: "{}", err: "empty event object"},
		{name: "no event name", body: `{"issue":{"key":"SUP-1"}}`, err: "no webhookEvent"},
		{name: "no key", body: `{"webhookEvent":"jira:issue_updated","issue":{}}`, err: "carries no issue key"},
		{name: "lower-case key", body: `{"webhookEvent":"jira:issue_updated","issue":{"key":"sup-1"}}`, err: `"sup-1" is not a valid key`},
		{name: "injection", body: `{"webhookEvent":"jira:issue_updated","issue":{"key":"SUP-1/../../x"}}`, err: "is not a valid key"},
		{name: "key too long", body: `{"webhookEvent":"jira:issue_updated","issue":{"key":"SUP-1234567890123"}}`, err: "is not a valid key"},
		{name: "attachment without id", body: `{"webhookEvent":"attachment_deleted","attachment":{}}`, err: "numeric attachment.id"},
		{name: "issuelink without ids", body: `{"webhookEvent":"issuelink_deleted","issueLink":{"id":1}}`, err: "sourceIssueId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := jira.ParseEvent([]byte(tc.body))
			if tc.err != "" {
				var ee *jira.EventError
				require.ErrorAs(t, err, &ee)
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			ev.Timestamp = tc.want.Timestamp
			require.Equal(t, tc.want, ev)
		})
	}
	ev, err := jira.ParseEvent([]byte(`{"timestamp":1770113212829,"webhookEvent":"issue_deleted","issue":{"key":"SUP-1"}}`))
	require.NoError(t, err)
	require.True(t, ev.Deleted())
	require.Equal(t, int64(1770113212829), ev.Timestamp.UnixMilli())
}

// TestEventsWithoutKeys: attachment_* and issuelink_* bodies carry ids,
// not keys; links resolve both ends (through Jira when not stored yet),
// attachments resolve through the stored attachments.
func TestEventsWithoutKeys(t *testing.T) {
	e := newEnv(t)
	a := e.fake.CreateIssue(jirafake.NewIssue{Summary: "a"})
	b := e.fake.CreateIssue(jirafake.NewIssue{Summary: "b", Project: "ENG"})
	e.deliver(jirafake.Only(e.fake.Deliveries(), "jira:issue_created")[:1]) // only a is stored

	e.fake.LinkSilently("Blocks", a, b) // the issue_updated events are lost
	res := e.deliver(e.fake.Deliveries())
	require.ElementsMatch(t, []string{a, b}, res.Upserted, "both ends, b's key found through Jira by id")
	require.Equal(t, [][]any{{b, "inward", a}, {a, "outward", b}}, e.query("SELECT issue_key, direction, linked_issue_key FROM issuelinks ORDER BY 1"))

	id := e.fake.Attach(b, jirafake.Agent, "x.txt", "text/plain", []byte("x"))
	e.sync()
	e.fake.DeleteAttachment(id, jirafake.Agent)
	ds := jirafake.Only(e.fake.Deliveries(), "attachment_deleted")
	require.Len(t, ds, 1)
	res = e.deliver(ds)
	require.Equal(t, []string{b}, res.Upserted, "the stored attachment names its issue")
	require.Zero(t, e.count("SELECT count(*) FROM attachments"))
}

// TestAttachmentDownload: with downloads on, attachment content is fetched
// (following the 303 to the media host) into the extract folder and
// local_path filled; files over the limit are skipped.
func TestAttachmentDownload(t *testing.T) {
	e := newEnv(t, func(s *jira.Settings) { s.DownloadAttachments, s.AttachmentMaxBytes = true, 10 })
	k := e.fake.CreateIssue(jirafake.NewIssue{Summary: "files"})
	small := e.fake.Attach(k, jirafake.Customer, "../../etc/passwd", "text/plain", []byte("tiny"))
	e.fake.Attach(k, jirafake.Customer, "big.bin", "application/octet-stream", []byte("far more than ten bytes"))
	e.sync()
	rows := e.query("SELECT attachment_id, local_path, hierarchical_path FROM attachments ORDER BY attachment_id")
	require.Len(t, rows, 2)
	path := filepath.Join(e.dir, "attachments", k, small+"_passwd")
	require.Equal(t, []any{small, path, "0/001/" + small + "_passwd"}, rows[0], "no path from the file name")
	require.Nil(t, rows[1][1], "over the size limit: not downloaded")
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "tiny", string(got))
	require.Equal(t, 1, e.fake.Hits(jirafake.RouteMedia))

	// Already on disk with the right size: not fetched again.
	e.fake.Update(k, jirafake.Agent, map[string]any{"summary": "files!"})
	e.sync()
	require.Equal(t, 1, e.fake.Hits(jirafake.RouteMedia))
}

// TestGateway: with a cloud id, calls go through /ex/jira/{cloudId}.
func TestGateway(t *testing.T) {
	e := newEnv(t, func(s *jira.Settings) { s.CloudID, s.GatewayURL = "11111111-2222-3333-4444-555555555555", s.BaseURL })
	k := e.fake.CreateIssue(jirafake.NewIssue{Summary: "via gateway"})
	e.sync()
	require.Equal(t, []string{k}, e.strings1("SELECT issue_key FROM issues"))

	bad := e.newSource(jira.Settings{BaseURL: e.fake.URL(), GatewayURL: e.fake.URL(), CloudID: "no-such-site",
		Email: e.fake.Email(), APIToken: connectors.NewSecret(e.fake.Token())})
	_, err := bad.FetchIssue(e.ctx, k)
	var he *jira.HTTPError
	require.ErrorAs(t, err, &he)
	require.Equal(t, http.StatusNotFound, he.Status)
	require.NotErrorIs(t, err, jira.ErrIssueNotFound, "a 404 that is not Jira's never reads as a deleted issue")
	require.ErrorContains(t, bad.Ping(e.ctx), "404")
	require.NoError(t, e.src.Ping(e.ctx))
}

// TestAuthFailure: a wrong token is a 401, not retried, and the error
// never shows the token.
func TestAuthFailure(t *testing.T) {
	e := newEnv(t)
	k := e.fake.CreateIssue(jirafake.NewIssue{Summary: "x"})
	bad := e.newSource(jira.Settings{BaseURL: e.fake.URL(), Email: e.fake.Email(), APIToken: connectors.NewSecret("wrong-token-xyz")})
	_, err := bad.FetchIssue(e.ctx, k)
	var he *jira.HTTPError
	require.ErrorAs(t, err, &he)
	require.Equal(t, http.StatusUnauthorized, he.Status)
	require.False(t, jira.Retryable(err))
	require.NotContains(t, err.Error(), "wrong-token-xyz")
	require.Empty(t, e.slept())
}

// TestSearch: the search follows nextPageToken until it is absent, and an
// unbounded query gets Jira's 400.
func TestSearch(t *testing.T) {
	e := newEnv(t)
	for range 205 {
		e.fake.CreateIssue(jirafake.NewIssue{Summary: "s"})
	}
	hits, err := e.src.Search(e.ctx, `project = "SUP" ORDER BY key ASC`)
	require.NoError(t, err)
	require.Len(t, hits, 205)
	require.Equal(t, "SUP-205", hits[204].Key)
	require.False(t, hits[0].Updated.IsZero())
	require.Equal(t, 3, e.fake.Hits(jirafake.RouteSearch))

	_, err = e.src.Search(e.ctx, "ORDER BY created ASC")
	require.ErrorContains(t, err, "Unbounded JQL queries are not allowed here")
	require.False(t, jira.Retryable(err))
}
