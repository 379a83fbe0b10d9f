package jira

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// IssueData is one issue as Jira has it now: the issue GET
// (fields=*all) with its thread and history completed by paging, and its
// remote links. It is the only input of the transform, so the rows are a
// function of Jira's state at FetchedAt and never of a webhook body.
type IssueData struct {
	ID, Key string
	// Fields is the issue's fields object, verbatim.
	Fields json.RawMessage
	// Comments is the complete thread, oldest first (beyond the 100 the
	// issue GET embeds), of CommentTotal comments.
	Comments     []Comment
	CommentTotal int
	// Histories is the complete changelog, oldest first (beyond the 100
	// the issue GET embeds).
	Histories []History
	// RemoteLinks are the issue's remote links; RemoteLinksKnown is false
	// when Jira would not tell (401/403), and the stored rows are kept.
	RemoteLinks      []RemoteLink
	RemoteLinksKnown bool
	// FetchedAt is when the fetch began: the data is at least this fresh.
	FetchedAt time.Time
}

// User is a Jira account; Email is empty when the user's privacy settings hide it.
type User struct {
	AccountID string `json:"accountId"`
	Email     string `json:"emailAddress"`
	Name      string `json:"displayName"`
}

// Comment is an element of a comment page.
type Comment struct {
	ID           string          `json:"id"`
	Author       *User           `json:"author"`
	UpdateAuthor *User           `json:"updateAuthor"`
	Body         json.RawMessage `json:"body"`
	Created      string          `json:"created"`
	Updated      string          `json:"updated"`
	JSDPublic    json.RawMessage `json:"jsdPublic"`
}

// History is one changelog entry.
type History struct {
	ID      string        `json:"id"`
	Author  *User         `json:"author"`
	Created string        `json:"created"`
	Items   []HistoryItem `json:"items"`
}

// HistoryItem is one changed field of a history.
type HistoryItem struct {
	Field      string  `json:"field"`
	FieldType  string  `json:"fieldtype"`
	FromString *string `json:"fromString"`
	ToString   *string `json:"toString"`
}

// RemoteLink is an element of GET /issue/{key}/remotelink.
type RemoteLink struct {
	ID     json.RawMessage `json:"id"` // a number
	Object struct {
		URL   string `json:"url"`
		Title string `json:"title"`
	} `json:"object"`
	Application struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"application"`
}

// ErrIncomplete means a thread or history kept changing while it was
// paged, so no consistent copy was read; retry later.
var ErrIncomplete = errors.New("jira collection changed during paging")

const pageSize = 100

// walkTries is how often a walk restarts when the collection changes under it.
const walkTries = 3

// need says which sub-resources a fetch completes. The webhook path and
// the backfill need all; a one-table Extract only what its table reads.
type need struct{ comments, changelog, remoteLinks bool }

var needAll = need{comments: true, changelog: true, remoteLinks: true}

// FetchIssue is the full refetch of one issue by key (or id): the issue
// GET with fields=*all and expand=renderedFields,changelog, every comment
// beyond the embedded 100, the full changelog and the remote links. A 404
// is ErrIssueNotFound; a 429 or 5xx that outlasts the retries is an
// error Retryable reports, never a partial issue.
func (s *Source) FetchIssue(ctx context.Context, key string) (*IssueData, error) {
	return s.fetchIssue(ctx, key, needAll)
}

func (s *Source) fetchIssue(ctx context.Context, key string, n need) (*IssueData, error) {
	at := s.now()
	var raw struct {
		ID        string          `json:"id"`
		Key       string          `json:"key"`
		Fields    json.RawMessage `json:"fields"`
		Changelog struct {
			Total     int       `json:"total"`
			Histories []History `json:"histories"`
		} `json:"changelog"`
	}
	q := url.Values{"fields": {"*all"}, "expand": {"renderedFields,changelog"}}
	if err := s.client.get(ctx, "/issue/"+url.PathEscape(key), q, &raw); err != nil {
		return nil, notFound(key, err)
	}
	if !validKey(raw.Key) || raw.ID == "" || len(raw.Fields) == 0 {
		return nil, fmt.Errorf("jira issue %s: the answer has no valid key, id or fields", key)
	}
	d := &IssueData{ID: raw.ID, Key: raw.Key, Fields: raw.Fields, FetchedAt: at}
	var f struct {
		Comment struct {
			Total    int       `json:"total"`
			Comments []Comment `json:"comments"`
		} `json:"comment"`
	}
	if err := json.Unmarshal(raw.Fields, &f); err != nil {
		return nil, fmt.Errorf("jira issue %s: fields: %w", key, err)
	}
	var err error
	d.Comments, d.CommentTotal = f.Comment.Comments, f.Comment.Total
	if n.comments && f.Comment.Total > len(d.Comments) {
		if d.Comments, err = s.walkComments(ctx, d.Key); err != nil {
			return nil, notFound(d.Key, err)
		}
		d.CommentTotal = len(d.Comments)
	}
	if d.Comments == nil {
		d.Comments = []Comment{}
	}
	d.Histories = raw.Changelog.Histories
	if n.changelog && raw.Changelog.Total > len(d.Histories) {
		if d.Histories, err = s.walkChangelog(ctx, d.Key); err != nil {
			return nil, notFound(d.Key, err)
		}
	}
	if n.remoteLinks {
		if d.RemoteLinks, d.RemoteLinksKnown, err = s.remoteLinks(ctx, d.Key); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// notFound marks Jira's 404 of an issue (or of its sub-resources: the
// issue went away during the fetch) as ErrIssueNotFound. A 404 without
// Jira's error document (a wrong base URL, an unknown cloud id) stays a
// plain error: it must never tombstone anything.
func notFound(key string, err error) error {
	var he *HTTPError
	if errors.As(err, &he) && he.Status == http.StatusNotFound && he.FromJira {
		return fmt.Errorf("jira issue %s: %w", key, ErrIssueNotFound)
	}
	return fmt.Errorf("jira issue %s: %w", key, err)
}

// walkComments pages /comment from the start. Offset pages skip or repeat
// items when the thread changes during the walk, so a walk whose total
// moved, or whose distinct ids do not add up to the total, starts over.
func (s *Source) walkComments(ctx context.Context, key string) ([]Comment, error) {
	for range walkTries {
		var all []Comment
		seen := map[string]bool{}
		total, stable := -1, true
		for startAt := 0; ; {
			var page struct {
				Total    int       `json:"total"`
				Comments []Comment `json:"comments"`
			}
			q := url.Values{"startAt": {strconv.Itoa(startAt)}, "maxResults": {strconv.Itoa(pageSize)}}
			if err := s.client.get(ctx, "/issue/"+url.PathEscape(key)+"/comment", q, &page); err != nil {
				return nil, err
			}
			if total >= 0 && page.Total != total {
				stable = false
			}
			total = page.Total
			for _, c := range page.Comments {
				if !seen[c.ID] {
					seen[c.ID] = true
					all = append(all, c)
				}
			}
			startAt += len(page.Comments)
			if len(page.Comments) == 0 || startAt >= page.Total {
				break
			}
		}
		if stable && len(all) == total {
			return all, nil
		}
	}
	return nil, fmt.Errorf("comments of %s: %w", key, ErrIncomplete)
}

// walkChangelog pages /changelog, the full history (the issue GET embeds
// only the newest 100), with the same restart rule as walkComments.
func (s *Source) walkChangelog(ctx context.Context, key string) ([]History, error) {
	for range walkTries {
		var all []History
		seen := map[string]bool{}
		total, stable := -1, true
		for startAt := 0; ; {
			var page struct {
				Total  int       `json:"total"`
				IsLast bool      `json:"isLast"`
				Values []History `json:"values"`
			}
			q := url.Values{"startAt": {strconv.Itoa(startAt)}, "maxResults": {strconv.Itoa(pageSize)}}
			if err := s.client.get(ctx, "/issue/"+url.PathEscape(key)+"/changelog", q, &page); err != nil {
				return nil, err
			}
			if total >= 0 && page.Total != total {
				stable = false
			}
			total = page.Total
			for _, h := range page.Values {
				if !seen[h.ID] {
					seen[h.ID] = true
					all = append(all, h)
				}
			}
			startAt += len(page.Values)
			if page.IsLast || len(page.Values) == 0 || startAt >= page.Total {
				break
			}
		}
		if stable && len(all) == total {
			return all, nil
		}
	}
	return nil, fmt.Errorf("changelog of %s: %w", key, ErrIncomplete)
}

// remoteLinks fetches the remote links: a 404 means none (the issue has
// none to show), 401/403 means unknown (keep what is stored); anything
// else (429 and 5xx after retries) fails the fetch, never reads as empty.
func (s *Source) remoteLinks(ctx context.Context, key string) ([]RemoteLink, bool, error) {
	var links []RemoteLink
	err := s.client.get(ctx, "/issue/"+url.PathEscape(key)+"/remotelink", nil, &links)
	var he *HTTPError
	switch {
	case err == nil:
		if links == nil {
			links = []RemoteLink{}
		}
		return links, true, nil
	case errors.As(err, &he) && he.Status == http.StatusNotFound && he.FromJira:
		return []RemoteLink{}, true, nil
	case errors.As(err, &he) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden):
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("jira issue %s: remote links: %w", key, err)
}

// Ping checks the settings against Jira: GET /myself answers 200 with
// the configured credentials.
func (s *Source) Ping(ctx context.Context) error {
	var me struct {
		AccountID string `json:"accountId"`
	}
	if err := s.client.get(ctx, "/myself", nil, &me); err != nil {
		return fmt.Errorf("jira %s: %w", s.name, err)
	}
	return nil
}

// issueKey resolves a numeric issue id to its key.
func (s *Source) issueKey(ctx context.Context, id string) (string, error) {
	var raw struct {
		Key string `json:"key"`
	}
	if err := s.client.get(ctx, "/issue/"+url.PathEscape(id), url.Values{"fields": {"key"}}, &raw); err != nil {
		return "", notFound(id, err)
	}
	if !validKey(raw.Key) {
		return "", fmt.Errorf("jira issue %s: the answer has no valid key", id)
	}
	return raw.Key, nil
}

// Hit is an issue found by a JQL search.
type Hit struct {
	Key     string
	Updated time.Time // zero unless asked for
}

// Search runs a JQL search and returns every hit, following
// nextPageToken until Jira omits it (it is absent, not null, on the last
// page).
func (s *Source) Search(ctx context.Context, jql string) ([]Hit, error) {
	var out []Hit
	token := ""
	for {
		req := map[string]any{"jql": jql, "maxResults": pageSize, "fields": []string{"key", "updated"}}
		if token != "" {
			req["nextPageToken"] = token
		}
		var page struct {
			Issues []struct {
				Key    string `json:"key"`
				Fields struct {
					Updated string `json:"updated"`
				} `json:"fields"`
			} `json:"issues"`
			NextPageToken string `json:"nextPageToken"`
		}
		if err := s.client.post(ctx, "/search/jql", req, &page); err != nil {
			return nil, fmt.Errorf("jira search %q: %w", jql, err)
		}
		for _, is := range page.Issues {
			if !validKey(is.Key) {
				return nil, fmt.Errorf("jira search %q: %q is not an issue key", jql, is.Key)
			}
			h := Hit{Key: is.Key}
			if is.Fields.Updated != "" {
				t, err := parseTime(is.Fields.Updated)
				if err != nil {
					return nil, fmt.Errorf("jira search %q: issue %s: %w", jql, is.Key, err)
				}
				h.Updated = t
			}
			out = append(out, h)
		}
		if page.NextPageToken == "" {
			return out, nil
		}
		if page.NextPageToken == token {
			return nil, fmt.Errorf("jira search %q: the next page token did not advance", jql)
		}
		token = page.NextPageToken
	}
}

// quoteJQL quotes a JQL string value.
func quoteJQL(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
