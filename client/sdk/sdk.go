// Package sdk is the Go client of Agnes: typed Connect clients for every service,
// bearer-token authentication, and plain-HTTP helpers for what is not an RPC
// (Parquet downloads). It depends only on the generated API code.
package sdk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
)

// Client talks to one Agnes server as one caller.
type Client struct {
	BaseURL string
	HTTP    *http.Client
	token   string
	connect []connect.ClientOption // what every service client was made with

	Auth    agnesv1connect.AuthServiceClient
	Admin   agnesv1connect.AdminServiceClient
	Sync    agnesv1connect.SyncServiceClient
	Query   agnesv1connect.QueryServiceClient
	Catalog agnesv1connect.CatalogServiceClient
	Memory  agnesv1connect.MemoryServiceClient
}

// Option configures a Client.
type Option func(*options)

type options struct {
	httpClient *http.Client
	connect    []connect.ClientOption
}

// WithHTTPClient replaces the HTTP client (e.g. for HTTP/2 without TLS).
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithGRPC speaks gRPC instead of the Connect protocol (needs HTTP/2).
func WithGRPC() Option { return func(o *options) { o.connect = append(o.connect, connect.WithGRPC()) } }

// New returns a client for baseURL (e.g. http://127.0.0.1:8000); token may be empty.
func New(baseURL, token string, opts ...Option) *Client {
	o := &options{httpClient: &http.Client{Timeout: 0, Transport: http.DefaultTransport}}
	for _, f := range opts {
		f(o)
	}
	baseURL = strings.TrimRight(baseURL, "/")
	copts := append([]connect.ClientOption{connect.WithInterceptors(BearerAuth(token))}, o.connect...)
	return &Client{
		BaseURL: baseURL, HTTP: o.httpClient, token: token, connect: copts,
		Auth:    agnesv1connect.NewAuthServiceClient(o.httpClient, baseURL, copts...),
		Admin:   agnesv1connect.NewAdminServiceClient(o.httpClient, baseURL, copts...),
		Sync:    agnesv1connect.NewSyncServiceClient(o.httpClient, baseURL, copts...),
		Query:   agnesv1connect.NewQueryServiceClient(o.httpClient, baseURL, copts...),
		Catalog: agnesv1connect.NewCatalogServiceClient(o.httpClient, baseURL, copts...),
		Memory:  agnesv1connect.NewMemoryServiceClient(o.httpClient, baseURL, copts...),
	}
}

// Token is the bearer token in use.
func (c *Client) Token() string { return c.token }

// NewRequest builds a plain HTTP request to the server with the bearer token.
func (c *Client) NewRequest(ctx context.Context, method, path string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// BearerAuth is a client interceptor that sends `Authorization: Bearer <token>` on
// every call, unary and streaming (nothing when token is empty).
func BearerAuth(token string) connect.Interceptor { return bearer(token) }

type bearer string

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if b != "" {
			req.Header().Set("Authorization", "Bearer "+string(b))
		}
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if b != "" {
			conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		}
		return conn
	}
}

func (bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// Describe turns an API error into one readable line ("permission denied: admin
// access required"), and a transport error into a hint about the server URL.
func Describe(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		if ce.Code() == connect.CodeUnavailable || ce.Code() == connect.CodeUnknown && strings.Contains(ce.Message(), "dial") {
			return fmt.Sprintf("cannot reach the server: %s", ce.Message())
		}
		return fmt.Sprintf("%s: %s", strings.ReplaceAll(ce.Code().String(), "_", " "), ce.Message())
	}
	return err.Error()
}

// DefaultTimeout bounds unary calls made by the CLI.
const DefaultTimeout = 60 * time.Second
