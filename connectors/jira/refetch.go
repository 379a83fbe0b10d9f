package jira

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// FetchError lists the issues a batch could not fetch, each with its
// error; Retryable(err) says whether retrying later may help.
type FetchError struct {
	Failed map[string]error
}

func (e *FetchError) Error() string {
	keys := sortedKeys(e.Failed)
	msgs := make([]string, 0, len(keys))
	for _, k := range keys {
		msgs = append(msgs, e.Failed[k].Error())
	}
	return fmt.Sprintf("jira: %d issue(s) could not be fetched: %s", len(keys), strings.Join(msgs, "; "))
}

// Unwrap exposes the per-issue errors to errors.Is and errors.As.
func (e *FetchError) Unwrap() []error {
	out := make([]error, 0, len(e.Failed))
	for _, k := range sortedKeys(e.Failed) {
		out = append(out, e.Failed[k])
	}
	return out
}

// Keys are the issues that failed, sorted.
func (e *FetchError) Keys() []string { return sortedKeys(e.Failed) }

// fetchAll fetches keys with Concurrency workers. fetched[i] is nil when
// Jira says keys[i] does not exist (asked at started[i]); failed holds
// every other error.
func (s *Source) fetchAll(ctx context.Context, keys []string, n need) (fetched []*IssueData, started []time.Time, failed map[string]error) {
	fetched = make([]*IssueData, len(keys))
	started = make([]time.Time, len(keys))
	failed = map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(s.cfg.Concurrency, len(keys)) {
		wg.Go(func() {
			for i := range next {
				started[i] = s.now()
				d, err := s.fetchIssue(ctx, keys[i], n)
				switch {
				case errors.Is(err, ErrIssueNotFound):
				case err != nil:
					mu.Lock()
					failed[keys[i]] = err
					mu.Unlock()
				default:
					fetched[i] = d
				}
			}
		})
	}
	for i := range keys {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		for _, k := range keys {
			if _, done := failed[k]; !done {
				failed[k] = err
			}
		}
	}
	return fetched, started, failed
}

// Refetch asks Jira for the current state of each key (Concurrency at a
// time) and returns the changes to Apply: the issue as it is now, or a
// deletion when Jira answers 404. An issue that moved to another key
// yields a deletion of the old key and the issue under its new one. When
// attachment downloads are on, new attachments are downloaded before the
// change is returned, so Apply can fill local_path. Keys that could not
// be fetched are left out and reported in a *FetchError; the returned
// changes are valid either way and should be applied.
func (st *Store) Refetch(ctx context.Context, keys []string) ([]Change, error) {
	for _, k := range keys {
		if !validKey(k) {
			return nil, fmt.Errorf("jira refetch: %q is not an issue key", k)
		}
	}
	keys = dedup(keys)
	fetched, started, failed := st.src.fetchAll(ctx, keys, needAll)
	var changes []Change
	var downloadErrs []error
	for i, k := range keys {
		if _, bad := failed[k]; bad {
			continue
		}
		d := fetched[i]
		if d == nil {
			changes = append(changes, Change{Key: k, FetchedAt: started[i], Deleted: true})
			continue
		}
		if d.Key != k { // moved: the old key is gone
			changes = append(changes, Change{Key: k, FetchedAt: d.FetchedAt, Deleted: true})
		}
		if st.src.cfg.DownloadAttachments {
			if err := st.downloadAttachments(ctx, d); err != nil {
				downloadErrs = append(downloadErrs, err)
			}
		}
		changes = append(changes, Change{Key: d.Key, FetchedAt: d.FetchedAt, Issue: d})
	}
	var err error
	if len(failed) > 0 {
		err = &FetchError{Failed: failed}
	}
	return changes, errors.Join(append([]error{err}, downloadErrs...)...)
}

func dedup(keys []string) []string {
	seen := map[string]bool{}
	out := keys[:0:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// KeysFor turns events into the keys to refetch: an event's issue key;
// for attachment_* events (no issue in the body) the issue that holds the
// attachment in the store (a new attachment also arrives as
// jira:issue_updated); for issuelink_* events both ends, by issue id
// through the store or, for an issue not stored yet, through Jira (an end
// Jira no longer has is skipped: its own deletion event covers it).
func (st *Store) KeysFor(ctx context.Context, events []Event) ([]string, error) {
	var keys []string
	for _, ev := range events {
		if ev.IssueKey != "" {
			keys = append(keys, ev.IssueKey)
		}
		if ev.AttachmentID != "" {
			k, err := st.lookup(ctx, tAttachments, "attachment_id", ev.AttachmentID)
			if err != nil {
				return nil, err
			}
			if k != "" {
				keys = append(keys, k)
			}
		}
		for _, id := range ev.LinkIssueIDs {
			k, err := st.lookup(ctx, tIssues, "issue_id", id)
			if err != nil {
				return nil, err
			}
			if k == "" {
				k, err = st.src.issueKey(ctx, id)
				if errors.Is(err, ErrIssueNotFound) {
					continue
				}
				if err != nil {
					return nil, err
				}
			}
			keys = append(keys, k)
		}
	}
	return dedup(keys), nil
}

// lookup finds the issue_key of the row of table t whose column equals value.
func (st *Store) lookup(ctx context.Context, t int, column, value string) (string, error) {
	from, err := st.readAll(t)
	if err != nil || from == "" {
		return "", err
	}
	var key string
	err = st.db.QueryRowContext(ctx, "SELECT issue_key FROM "+from+" WHERE "+quoteIdent(column)+" = ? LIMIT 1", value).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("jira: find %s %s: %w", column, value, err)
	}
	return key, nil
}

// downloadAttachments fetches the issue's attachments that are not on disk
// yet (or whose size differs), up to the size limit, into
// attachments/<KEY>/<id>_<filename>.
func (st *Store) downloadAttachments(ctx context.Context, d *IssueData) error {
	var f struct {
		Attachment []attachment `json:"attachment"`
	}
	if err := json.Unmarshal(d.Fields, &f); err != nil {
		return fmt.Errorf("jira issue %s: attachments: %w", d.Key, err)
	}
	var errs []error
	for _, a := range f.Attachment {
		if !idRE.MatchString(a.ID) || a.Size == nil || *a.Size > st.src.cfg.maxSize {
			continue
		}
		path := filepath.Join(st.AttachmentsDir(), d.Key, attachmentFile(a))
		if fi, err := os.Stat(path); err == nil && fi.Size() == *a.Size {
			continue
		}
		if err := st.src.download(ctx, a.Content, path); err != nil {
			errs = append(errs, fmt.Errorf("jira issue %s: attachment %s: %w", d.Key, a.ID, err))
		}
	}
	return errors.Join(errs...)
}

// download fetches an attachment's content into path. The URL must be on
// the Jira site or the API host (no fetching of arbitrary URLs a payload
// could name); redirects to the media host are followed, without our
// credentials (Go drops Authorization on a redirect to another host).
// More than the size limit fails the download.
func (s *Source) download(ctx context.Context, raw, path string) error {
	u, err := url.Parse(raw)
	if err != nil || !s.trustedHost(u) {
		return fmt.Errorf("content URL %q is not on the Jira site", raw)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", s.client.auth)
	resp, err := s.client.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &HTTPError{Method: http.MethodGet, Path: u.Path, Status: resp.StatusCode}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.maxSize+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > s.cfg.maxSize {
		return fmt.Errorf("larger than %d bytes", s.cfg.maxSize)
	}
	return writeFileAtomic(path, data)
}

func (s *Source) trustedHost(u *url.URL) bool {
	if u.Scheme != s.cfg.site.Scheme && u.Scheme != "https" {
		return false
	}
	hosts := []string{s.cfg.site.Host, s.cfg.api.Host}
	if s.cfg.Domain != "" {
		hosts = append(hosts, strings.ToLower(s.cfg.Domain))
	}
	return slices.Contains(hosts, strings.ToLower(u.Host))
}
