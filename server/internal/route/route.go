// Package route serves the HTTP routes that cannot go through the REST gateway
// (streams, downloads, multipart uploads, webhooks, OAuth callbacks, the web UI)
// the way RPCs are served: each declares an access policy like an RPC's (the
// agnes.v1.Policy message), and one adapter authenticates the caller, applies
// the policy before the handler reads anything, turns the handler's error into
// the API's {"detail","code"} body with the right status, and records the
// route's name and outcome for the access log. A route without a policy is
// denied to everyone.
package route

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/reqctx"
)

// Handler serves a route. It returns errors instead of writing them (connect
// errors with their codes, or domain errors apierr converts); once it has
// written a response, an error is only logged.
type Handler func(w http.ResponseWriter, r *http.Request) error

// Route is one plain HTTP route.
type Route struct {
	// Pattern is the net/http pattern: "GET /api/data/{table_id}/download".
	Pattern string
	// Name is what the access log calls it: the procedure of the RPC it
	// mirrors ("agnes.v1.SyncService/GetManifest") or its own ("data.download").
	Name string
	// Policy says who may call it, as an RPC's policy does; resource_field
	// names a wildcard of the pattern. nil denies everyone.
	Policy *agnesv1.Policy
	// Handler serves the route once the policy allows the caller.
	Handler Handler
}

// Policies are the usual policies of routes.
var (
	Public        = &agnesv1.Policy{Access: agnesv1.Access_ACCESS_PUBLIC}
	Authenticated = &agnesv1.Policy{Access: agnesv1.Access_ACCESS_AUTHENTICATED}
	Admin         = &agnesv1.Policy{Access: agnesv1.Access_ACCESS_ADMIN}
)

// Resource is the policy of a route that needs a grant on the resource its
// pattern's wildcard names.
func Resource(resourceType, wildcard string) *agnesv1.Policy {
	return &agnesv1.Policy{Access: agnesv1.Access_ACCESS_RESOURCE, ResourceType: resourceType, ResourceField: wildcard}
}

// Adapter serves routes.
type Adapter struct {
	authn      *auth.Authenticator
	authorizer *access.Authorizer
	log        *slog.Logger
}

// NewAdapter returns the adapter every plain route goes through.
func NewAdapter(authn *auth.Authenticator, authorizer *access.Authorizer, log *slog.Logger) *Adapter {
	return &Adapter{authn: authn, authorizer: authorizer, log: log}
}

// Mount registers routes on mux.
func (a *Adapter) Mount(mux *http.ServeMux, routes ...Route) {
	for _, rt := range routes {
		mux.Handle(rt.Pattern, a.Handle(rt))
	}
}

// Handle returns the route's handler.
func (a *Adapter) Handle(rt Route) http.Handler {
	return a.authn.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		info := reqctx.From(ctx)
		info.SetRPC(rt.Name, "ok")
		err := a.authorizer.CheckPolicy(ctx, rt.Name, rt.Policy, func(field string) (string, bool) {
			return r.PathValue(field), true
		})
		rec := &started{ResponseWriter: w}
		if err == nil {
			err = rt.Handler(rec, r)
		}
		if err == nil {
			return
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = &TooLargeError{Msg: fmt.Sprintf("request body too large (max %d bytes)", mbe.Limit)}
		}
		ce := apierr.Convert(ctx, err)
		info.SetRPC(rt.Name, ce.Code().String())
		if rec.wrote {
			a.log.WarnContext(ctx, "route failed after its response started", "route", rt.Name,
				"code", ce.Code().String(), "err", err, "request_id", info.RequestID)
			return
		}
		status := apierr.HTTPStatus(ce.Code())
		var tooLarge *TooLargeError
		if errors.As(err, &tooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		apierr.WriteConnectStatus(w, status, ce)
	}))
}

// TooLargeError is a request body over a limit: 413 with the limit named.
type TooLargeError struct{ Msg string }

func (e *TooLargeError) Error() string { return e.Msg }

// Unwrap gives the API error: ResourceExhausted with the message (the status is 413).
func (e *TooLargeError) Unwrap() error {
	return connect.NewError(connect.CodeResourceExhausted, errors.New(e.Msg))
}

// started notes whether a handler began its response.
type started struct {
	http.ResponseWriter
	wrote bool
}

func (s *started) WriteHeader(code int) {
	s.wrote = true
	s.ResponseWriter.WriteHeader(code)
}

func (s *started) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *started) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// ReadFrom keeps http.ServeContent's sendfile path open through the adapter
// (downloads are copied by the kernel, not through user-space buffers).
func (s *started) ReadFrom(src io.Reader) (int64, error) {
	s.wrote = true
	if rf, ok := s.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{s.ResponseWriter}, src)
}

// writerOnly hides a writer's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }

func (s *started) Unwrap() http.ResponseWriter { return s.ResponseWriter }
