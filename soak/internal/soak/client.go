package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Client speaks the server's REST API as any HTTP client would.
type Client struct {
	URL  string
	HTTP *http.Client
}

// NewClient returns a client of base whose connections start from source (a
// loopback address such as 127.0.0.3, so that it is a client address of its
// own for the per-IP limits; "" for the default).
func NewClient(base, source string) *Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	return &Client{URL: base, HTTP: &http.Client{Transport: tr}}
}

// Response is a whole answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Detail is the "detail" of an error answer, or the body.
func (r *Response) Detail() string {
	var e struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(r.Body, &e) == nil && e.Detail != "" {
		return e.Detail
	}
	return strings.TrimSpace(string(r.Body))
}

// Do sends a request with an optional JSON body (a string is sent as is)
// and reads the whole answer.
func (c *Client) Do(ctx context.Context, method, path, token string, body any, header http.Header) (*Response, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, r)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return &Response{Status: res.StatusCode, Header: res.Header, Body: b}, nil
}

// JSON sends a request and decodes a 2xx answer into out (nil: ignored);
// any other status is an error naming it.
func (c *Client) JSON(ctx context.Context, method, path, token string, body, out any) error {
	res, err := c.Do(ctx, method, path, token, body, nil)
	if err != nil {
		return err
	}
	if res.Status/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, res.Status, res.Detail())
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(res.Body, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

type tokenAnswer struct {
	AccessToken string `json:"access_token"`
}

// Bootstrap creates the first admin and returns its session token.
func (c *Client) Bootstrap(ctx context.Context, email, password string) (string, error) {
	var t tokenAnswer
	err := c.JSON(ctx, http.MethodPost, "/auth/bootstrap", "", map[string]string{"email": email, "password": password}, &t)
	return t.AccessToken, err
}

// SignIn exchanges email and password for a session token.
func (c *Client) SignIn(ctx context.Context, email, password string) (string, error) {
	var t tokenAnswer
	err := c.JSON(ctx, http.MethodPost, "/auth/token", "", map[string]string{"email": email, "password": password}, &t)
	return t.AccessToken, err
}

// CreateUser creates a user (admin token) with no groups beyond Everyone
// and so no grants.
func (c *Client) CreateUser(ctx context.Context, admin, email, password string) error {
	return c.JSON(ctx, http.MethodPost, "/api/users", admin, map[string]string{"email": email, "password": password}, nil)
}

// Query runs POST /api/query and returns the whole answer.
func (c *Client) Query(ctx context.Context, token, sql string, limit int64) (*Response, error) {
	return c.Do(ctx, http.MethodPost, "/api/query", token, map[string]any{"sql": sql, "limit": limit}, nil)
}

// setup bootstraps an admin and creates signed-in users with no grants.
func setup(ctx context.Context, s *Server, users ...string) (admin string, tokens map[string]string, err error) {
	c := NewClient(s.URL, "")
	if admin, err = c.Bootstrap(ctx, "admin@example.com", adminPassword); err != nil {
		return "", nil, err
	}
	tokens = map[string]string{}
	for _, u := range users {
		email := u + "@example.com"
		if err := c.CreateUser(ctx, admin, email, userPassword); err != nil {
			return "", nil, err
		}
		if tokens[u], err = c.SignIn(ctx, email, userPassword); err != nil {
			return "", nil, err
		}
	}
	return admin, tokens, nil
}

const (
	adminPassword = "soak-admin-password"
	userPassword  = "soak-user-password"
)
