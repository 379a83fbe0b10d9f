package keboola

import (
	"bytes"
	"context"
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

	"github.com/agnesdata/agnes/connectors"
)

// tokenHeader carries the Storage token on every Storage API call, and
// on nothing else.
const tokenHeader = "X-StorageApi-Token"

// ErrTokenRejected is wrapped by every error caused by Keboola refusing
// the source's token (HTTP 401): a wrong, expired or disabled token, or
// one of another stack. Such calls are never retried.
var ErrTokenRejected = errors.New("Keboola rejected the token")

// APIError is an error answer of the Storage API: its status and the
// error body's message, code and exceptionId (Keboola support's handle).
type APIError struct {
	Source      string // the source instance whose call failed
	Method      string
	Path        string // under /v2/storage
	Status      int
	Message     string
	Code        string
	ExceptionID string
}

func (e *APIError) Error() string {
	if e.Status == http.StatusUnauthorized {
		return fmt.Sprintf("Keboola rejected the token for source %s: %s", e.Source, e.detail())
	}
	return fmt.Sprintf("source %s: Keboola answered %s %s with %d: %s", e.Source, e.Method, e.Path, e.Status, e.detail())
}

// detail is Keboola's message with its code and exceptionId.
func (e *APIError) detail() string {
	d := e.Message
	if e.Code != "" {
		d += " (" + e.Code + ")"
	}
	if e.ExceptionID != "" {
		d += ", exceptionId " + e.ExceptionID
	}
	return d
}

// PublicMessage implements connectors.PublicError: what Keboola answered,
// never the token.
func (e *APIError) PublicMessage() string { return e.Error() }

// Unwrap makes a 401 match ErrTokenRejected.
func (e *APIError) Unwrap() error {
	if e.Status == http.StatusUnauthorized {
		return ErrTokenRejected
	}
	return nil
}

// client is a small Storage API client: JSON in and out, the token in
// its header, retries of transient failures.
type client struct {
	source  string
	base    string // stack URL + /v2/storage
	token   connectors.Secret
	http    *http.Client
	timeout time.Duration // per API call
	retries int
	wait    time.Duration // first backoff
}

// retryable reports whether a call that got status (0: no answer) may
// succeed when repeated: transport errors, 429, 500, 502, 503, 504.
func retryable(status int) bool {
	switch status {
	case 0, http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// get and post call the Storage API and decode the JSON answer into out.
func (c *client) get(ctx context.Context, path string, query url.Values, out any) error {
	return c.call(ctx, http.MethodGet, path, query, nil, out)
}

func (c *client) post(ctx context.Context, path string, body, out any) error {
	return c.call(ctx, http.MethodPost, path, nil, body, out)
}

func (c *client) call(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("source %s: %s %s: %w", c.source, method, path, err)
		}
	}
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	return c.retry(ctx, c.timeout, func(ctx context.Context) (int, time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(payload))
		if err != nil {
			return 0, 0, err
		}
		req.Header.Set(tokenHeader, c.token.Reveal())
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return 0, 0, fmt.Errorf("source %s: %s %s: %w", c.source, method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, 0, fmt.Errorf("source %s: %s %s: %w", c.source, method, path, err)
		}
		if resp.StatusCode >= 300 {
			return resp.StatusCode, retryAfter(resp.Header), c.apiError(method, path, resp.StatusCode, b)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return resp.StatusCode, 0, fmt.Errorf("source %s: %s %s: unexpected answer: %w", c.source, method, path, err)
			}
		}
		return resp.StatusCode, 0, nil
	})
}

// retry runs attempt until it succeeds, fails for good or the retries
// are spent. attempt returns the HTTP status (0 when none came back), the
// server's Retry-After and the error. Waits double from c.wait up to 10 s
// unless the server said how long to wait; each attempt gets timeout.
func (c *client) retry(ctx context.Context, timeout time.Duration, attempt func(ctx context.Context) (int, time.Duration, error)) error {
	wait := c.wait
	for n := 0; ; n++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		status, after, err := attempt(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("source %s: %w", c.source, context.Cause(ctx))
		}
		var dns *net.DNSError
		if n >= c.retries || !retryable(status) || (errors.As(err, &dns) && dns.IsNotFound) {
			return err
		}
		if after <= 0 {
			after = wait
			wait = min(2*wait, 10*time.Second)
		}
		if err := sleep(ctx, after); err != nil {
			return fmt.Errorf("source %s: %w", c.source, err)
		}
	}
}

func (c *client) apiError(method, path string, status int, body []byte) error {
	var b struct {
		Error       string          `json:"error"`
		Message     string          `json:"message"`
		Reason      string          `json:"reason"` // maintenance answers
		Code        json.RawMessage `json:"code"`
		ExceptionID string          `json:"exceptionId"`
	}
	_ = json.Unmarshal(body, &b)
	e := &APIError{Source: c.source, Method: method, Path: path, Status: status, ExceptionID: b.ExceptionID,
		Message: cmpOr(b.Error, b.Message, b.Reason, http.StatusText(status)), Code: strings.Trim(string(b.Code), `"`)}
	return e
}

// retryAfter reads Retry-After in seconds or as an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

func cmpOr(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// noTokenRedirects keeps the Storage token from following a redirect to
// another host (Go forwards custom headers on redirects).
func noTokenRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Host != via[0].URL.Host {
		req.Header.Del(tokenHeader)
	}
	return nil
}
