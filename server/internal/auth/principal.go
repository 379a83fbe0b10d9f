package auth

import (
	"context"
	"errors"
	"strings"

	"connectrpc.com/connect"

	"github.com/agnesdata/agnes/server/internal/store"
)

// Principal is the authenticated caller of one request.
type Principal struct {
	*store.Identity
	TokenType string // TypeSession, TypePAT or TypeService
	TokenID   string // jti: session id or PAT row id
	ExpiresAt int64  // unix seconds; 0 = never (PATs without expiry)
	// Scope is the PAT's scope (store.ScopeGeneral or store.ScopeReadOnly); sessions
	// and service tokens are general.
	Scope string
	// procedures limits a service token to these procedures and routes (nil: no limit).
	procedures map[string]bool
}

// ReadOnly reports whether the caller may only call RPCs that change no state.
func (p *Principal) ReadOnly() bool { return p.Scope == store.ScopeReadOnly }

// MayCall reports whether the caller's token allows the procedure or route name
// ("/agnes.v1.SyncService/TriggerSync" or "agnes.v1.SyncService/TriggerSync").
func (p *Principal) MayCall(name string) bool {
	return p.procedures == nil || p.procedures[strings.TrimPrefix(name, "/")]
}

type principalKey struct{}

type failureKey struct{}

// WithPrincipal attaches the caller to a context.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller, or nil for an anonymous request.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// withFailure records why credentials that were presented were refused, so a
// protected RPC can say so while a public one ignores bad credentials.
func withFailure(ctx context.Context, reason string) context.Context {
	return context.WithValue(ctx, failureKey{}, reason)
}

// FailureFromContext returns why presented credentials were refused ("" when none
// were presented or they were fine).
func FailureFromContext(ctx context.Context) string {
	s, _ := ctx.Value(failureKey{}).(string)
	return s
}

// Required returns the caller, or the 401 error that says why there is none (the
// reason presented credentials failed, or that none were presented). Plain HTTP
// handlers use it; RPCs get the same answer from the authorization interceptor.
func Required(ctx context.Context) (*Principal, error) {
	if p := FromContext(ctx); p != nil {
		return p, nil
	}
	reason := FailureFromContext(ctx)
	if reason == "" {
		reason = "missing or invalid Authorization header"
	}
	return nil, connect.NewError(connect.CodeUnauthenticated, errors.New(reason))
}
