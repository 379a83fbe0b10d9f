package jirafake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors/jira/jirafake"
)

func get(t *testing.T, f *jirafake.Fake, path string, out any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.URL()+path, nil)
	require.NoError(t, err)
	req.SetBasicAuth(f.Email(), f.Token())
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if out != nil {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
	return resp.StatusCode
}

// TestIssueEmbedsNewest100: the issue GET embeds the newest 100 comments
// with startAt = total-100, as Jira does.
func TestIssueEmbedsNewest100(t *testing.T) {
	f := jirafake.New(t, jirafake.Options{})
	k := f.CreateIssue(jirafake.NewIssue{Summary: "x"})
	f.AddComments(k, jirafake.Agent, 130)
	var is struct {
		Fields struct {
			Comment struct {
				StartAt, Total int
				Comments       []struct{ ID string }
			}
		}
	}
	require.Equal(t, 200, get(t, f, "/rest/api/3/issue/"+k+"?fields=*all", &is))
	require.Equal(t, 30, is.Fields.Comment.StartAt)
	require.Equal(t, 130, is.Fields.Comment.Total)
	require.Len(t, is.Fields.Comment.Comments, 100)
	require.Equal(t, f.CommentIDs(k)[30], is.Fields.Comment.Comments[0].ID)

	req, _ := http.NewRequest(http.MethodGet, f.URL()+"/rest/api/3/issue/"+k, nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "Basic auth is required")
	require.Equal(t, http.StatusNotFound, get(t, f, "/rest/api/3/issue/SUP-999", nil))
}

// TestSearchJQL: pages carry nextPageToken, absent on the last page;
// unbounded JQL is a 400.
func TestSearchJQL(t *testing.T) {
	f := jirafake.New(t, jirafake.Options{})
	for range 60 {
		f.CreateIssue(jirafake.NewIssue{Summary: "x"})
	}
	post := func(body string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, f.URL()+"/rest/api/3/search/jql", strings.NewReader(body))
		req.SetBasicAuth(f.Email(), f.Token())
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	code, page := post(`{"jql":"project = SUP AND created >= -1d","fields":["key"]}`)
	require.Equal(t, 200, code)
	require.Len(t, page["issues"], 50, "default page size")
	tok := page["nextPageToken"].(string)
	code, page = post(`{"jql":"project = SUP AND created >= -1d","fields":["key"],"nextPageToken":"` + tok + `"}`)
	require.Equal(t, 200, code)
	require.Len(t, page["issues"], 10)
	_, has := page["nextPageToken"]
	require.False(t, has, "absent, not null, on the last page")
	code, page = post(`{"jql":"ORDER BY created ASC"}`)
	require.Equal(t, 400, code)
	require.Contains(t, page["errorMessages"].([]any)[0], "Unbounded JQL")
}

// TestSenderRetries: the sender retries 5xx and 429 with the retry
// header and the same identifier, and gives up on other 4xx at once.
func TestSenderRetries(t *testing.T) {
	f := jirafake.New(t, jirafake.Options{})
	f.CreateIssue(jirafake.NewIssue{Summary: "x"})
	d := f.Deliveries()[0]
	var mu sync.Mutex
	var seen []http.Header
	answers := []int{503, 429, 200, 400}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		require.True(t, bytes.Equal(body, d.Body))
		require.Equal(t, "sha256="+jirafake.Sign("s", body), r.Header.Get("X-Hub-Signature"))
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Header.Clone())
		w.WriteHeader(answers[len(seen)-1])
	}))
	defer rcv.Close()
	s := &jirafake.Sender{URL: rcv.URL, Secret: "s", Retries: 5}
	res, err := s.Send(context.Background(), d)
	require.NoError(t, err)
	require.Equal(t, 200, res.Status)
	require.Equal(t, 3, res.Attempts)
	require.Equal(t, "", seen[0].Get("X-Atlassian-Webhook-Retry"))
	require.Equal(t, "2", seen[2].Get("X-Atlassian-Webhook-Retry"))
	require.Equal(t, d.ID, seen[2].Get("X-Atlassian-Webhook-Identifier"))
	require.Equal(t, "Primary", seen[0].Get("X-Atlassian-Webhook-Flow"))
	res, err = s.Send(context.Background(), d)
	require.NoError(t, err)
	require.Equal(t, 400, res.Status)
	require.Equal(t, 1, res.Attempts, "other 4xx are not retried")
}

// TestDeleteCascade: deleting an issue sends jira:issue_deleted as Primary
// and the dependent events as Secondary; attachment and link bodies carry
// no issue key.
func TestDeleteCascade(t *testing.T) {
	f := jirafake.New(t, jirafake.Options{})
	a := f.CreateIssue(jirafake.NewIssue{Summary: "a"})
	b := f.CreateIssue(jirafake.NewIssue{Summary: "b"})
	f.AddComment(a, jirafake.Agent, "c", true)
	f.Attach(a, jirafake.Agent, "f.txt", "text/plain", []byte("f"))
	f.Link("Blocks", a, b, jirafake.Agent)
	f.Deliveries()
	f.DeleteIssue(a, jirafake.Agent)
	var got []string
	for _, d := range f.Deliveries() {
		got = append(got, d.Event+"/"+d.Flow)
		var body map[string]any
		require.NoError(t, json.Unmarshal(d.Body, &body))
		if strings.HasPrefix(d.Event, "attachment_") || strings.HasPrefix(d.Event, "issuelink_") {
			require.NotContains(t, body, "issue")
		}
		if issue, ok := body["issue"].(map[string]any); ok {
			require.NotContains(t, issue["fields"], "comment", "issue bodies carry no comments")
		}
	}
	require.Equal(t, []string{"jira:issue_deleted/Primary", "comment_deleted/Secondary", "attachment_deleted/Secondary", "issuelink_deleted/Secondary"}, got)
}
