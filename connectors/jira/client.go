package jira

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrIssueNotFound means Jira answered 404 for an issue: it was deleted (or
// is not visible to the account). A refetch that gets it tombstones the
// issue instead of falling back to a webhook body.
var ErrIssueNotFound = errors.New("jira issue not found")

// HTTPError is an answer Jira gave with a status the client does not
// accept. Message is Jira's own errorMessages text, never the request's
// credentials.
type HTTPError struct {
	Method, Path string
	Status       int
	Message      string
	// FromJira: the body was Jira's error document (errorMessages), so a
	// 404 is Jira saying "no such issue", not a wrong URL or a gateway.
	FromJira bool
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("jira %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Retryable reports whether err is worth retrying later: Jira rate
// limited us or failed (429, 5xx), or the connection did. The job that
// processes an event retries those; anything else is final.
func Retryable(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status == http.StatusTooManyRequests || he.Status >= 500
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrIncomplete)
}

// Backoff limits of the client. Retry-After is honoured up to maxWait.
const (
	maxAttempts  = 6
	firstBackoff = time.Second
	maxBackoff   = time.Minute
	maxWait      = 5 * time.Minute
	maxBody      = 256 << 20 // an issue with thousands of comments is large, not unbounded
)

// Option adjusts a Source (tests inject their clock and sleeper here).
type Option func(*options)

type options struct {
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time
	http  *http.Client
}

// WithSleep replaces the wait between retries (tests record it instead of sleeping).
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(o *options) { o.sleep = sleep }
}

// WithClock replaces time.Now (the fetch times that order changes).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithHTTPClient replaces the HTTP client.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.http = c } }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// client calls Jira REST v3 with Basic auth, retrying 429 and 5xx.
type client struct {
	api   *url.URL
	auth  string // the Authorization header value; never logged or put in an error
	http  *http.Client
	sleep func(ctx context.Context, d time.Duration) error
}

func newClient(c config, o options) *client {
	basic := base64.StdEncoding.EncodeToString([]byte(c.Email + ":" + c.APIToken.Reveal()))
	return &client{api: c.api, auth: "Basic " + basic, http: o.http, sleep: o.sleep}
}

// get fetches path (relative to /rest/api/3) into out.
func (c *client) get(ctx context.Context, path string, q url.Values, out any) error {
	return c.call(ctx, http.MethodGet, path, q, nil, out)
}

// post sends body as JSON and reads the answer into out.
func (c *client) post(ctx context.Context, path string, body, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return c.call(ctx, http.MethodPost, path, nil, raw, out)
}

func (c *client) call(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	u := *c.api
	u.Path += path
	u.RawQuery = q.Encode()
	for attempt := 1; ; attempt++ {
		raw, wait, err := c.once(ctx, method, &u, path, body)
		if err == nil {
			if err := json.Unmarshal(raw, out); err != nil {
				return fmt.Errorf("jira %s %s: the answer is not the expected JSON: %w", method, path, err)
			}
			return nil
		}
		if !Retryable(err) || attempt == maxAttempts || ctx.Err() != nil {
			return err
		}
		if wait == 0 {
			wait = min(firstBackoff<<(attempt-1), maxBackoff)
		}
		if err := c.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// once makes one request; wait is the Retry-After of a 429/503, if any.
func (c *client) once(ctx context.Context, method string, u *url.URL, path string, body []byte) ([]byte, time.Duration, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("jira %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, 0, fmt.Errorf("jira %s %s: %w", method, path, err)
	}
	if resp.StatusCode == http.StatusOK {
		return raw, 0, nil
	}
	msg, fromJira := jiraMessage(raw)
	he := &HTTPError{Method: method, Path: path, Status: resp.StatusCode, Message: msg, FromJira: fromJira}
	return nil, retryAfter(resp.Header.Get("Retry-After"), time.Now()), he
}

// retryAfter reads Retry-After as seconds or an HTTP-date, capped at
// maxWait; 0 when absent or unreadable (the caller backs off instead).
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxWait)
}

// jiraMessage extracts errorMessages/errors from a Jira error body,
// short; ok says the body was one.
func jiraMessage(raw []byte) (msg string, ok bool) {
	var body struct {
		ErrorMessages []string          `json:"errorMessages"`
		Errors        map[string]string `json:"errors"`
	}
	if json.Unmarshal(raw, &body) != nil || body.ErrorMessages == nil && body.Errors == nil {
		return "", false
	}
	msgs := body.ErrorMessages
	for k, v := range body.Errors {
		msgs = append(msgs, k+": "+v)
	}
	msg = strings.Join(msgs, "; ")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg, true
}
