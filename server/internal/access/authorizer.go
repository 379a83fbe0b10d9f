package access

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/store"
)

// Authorizer is the Connect interceptor that enforces each RPC's policy before the
// handler runs. It runs after authentication (HTTP middleware) and before request
// validation, so a caller without access learns nothing about the request schema.
type Authorizer struct {
	policies Policies
	limiter  *RateLimiter // nil: no rate limits
}

// NewAuthorizer returns the interceptor; limiter may be nil to disable rate limits.
func NewAuthorizer(p Policies, limiter *RateLimiter) *Authorizer {
	return &Authorizer{policies: p, limiter: limiter}
}

// Check applies the policy of procedure to the caller in ctx. msg is the request
// (nil when not yet received; then resource fields are checked on receipt).
func (a *Authorizer) Check(ctx context.Context, procedure string, msg proto.Message) error {
	return a.CheckPolicy(ctx, procedure, a.policies[procedure], func(field string) (string, bool) {
		if msg == nil {
			return "", false
		}
		return resourceID(msg, field), true
	})
}

// CheckPolicy applies a declared policy to the caller in ctx: the one decision
// for RPCs and plain HTTP routes. name keys the rate limit; resource returns the
// value of the policy's resource_field, or false when it is not known yet (a
// stream's message: checked on receipt). A nil policy denies everyone.
func (a *Authorizer) CheckPolicy(ctx context.Context, name string, pol *agnesv1.Policy, resource func(field string) (string, bool)) error {
	if pol == nil || pol.GetAccess() == agnesv1.Access_ACCESS_UNSPECIFIED {
		return connect.NewError(connect.CodePermissionDenied, errors.New("no access policy for this method"))
	}
	if n := pol.GetRatePerMinute(); n > 0 && a.limiter != nil {
		if wait, ok := a.limiter.Allow(name, reqctx.From(ctx).ClientIP, int(n)); !ok {
			err := connect.NewError(connect.CodeResourceExhausted,
				fmt.Errorf("too many requests — %d per minute", n))
			err.Meta().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			return err
		}
	}
	if err := Precheck(ctx, pol); err != nil {
		return err
	}
	if p := auth.FromContext(ctx); p != nil && pol.GetAccess() != agnesv1.Access_ACCESS_PUBLIC && !p.MayCall(name) {
		return connect.NewError(connect.CodePermissionDenied,
			fmt.Errorf("the %s token may not call %s", p.TokenID, strings.TrimPrefix(name, "/")))
	}
	if pol.GetAccess() != agnesv1.Access_ACCESS_RESOURCE || pol.GetResourceField() == "" {
		return nil
	}
	id, known := resource(pol.GetResourceField())
	if !known {
		return nil
	}
	return CheckResource(auth.FromContext(ctx), pol.GetResourceType(), id)
}

// Precheck is the part of a policy that needs neither the request nor state
// changes (no rate limit): who the caller is and whether they are an admin. The
// edge runs it before reading a body, so an anonymous client cannot make the
// server read, buffer or decode anything for a protected method.
func Precheck(ctx context.Context, pol *agnesv1.Policy) error {
	switch pol.GetAccess() {
	case agnesv1.Access_ACCESS_PUBLIC:
		return nil
	case agnesv1.Access_ACCESS_UNSPECIFIED:
		return connect.NewError(connect.CodePermissionDenied, errors.New("no access policy for this method"))
	}
	p, err := auth.Required(ctx)
	if err != nil {
		return err
	}
	if pol.GetSessionOnly() && p.TokenType != auth.TypeSession {
		return connect.NewError(connect.CodePermissionDenied,
			errors.New("this action requires an interactive session, not a personal access token"))
	}
	if p.ReadOnly() && !pol.GetReadOnly() {
		return connect.NewError(connect.CodePermissionDenied,
			errors.New("this personal access token is read-only: it may only call methods that change nothing"))
	}
	if pol.GetAccess() == agnesv1.Access_ACCESS_ADMIN && !p.IsAdmin {
		return connect.NewError(connect.CodePermissionDenied, errors.New("admin access required"))
	}
	return nil
}

// Policy returns the declared policy of a procedure (nil: none, denied).
func (a *Authorizer) Policy(procedure string) *agnesv1.Policy { return a.policies[procedure] }

// Can is the one resource rule: admins reach everything; anyone else needs a
// grant of the resource to one of their groups.
func Can(id *store.Identity, resourceType, resourceID string) bool {
	if id == nil {
		return false
	}
	if id.IsAdmin {
		return true
	}
	_, ok := id.Grants[store.Resource{Type: resourceType, ID: resourceID}]
	return ok
}

// CheckResource applies Can to the caller, as a PermissionDenied error.
func CheckResource(p *auth.Principal, resourceType, id string) error {
	if p != nil && Can(p.Identity, resourceType, id) {
		return nil
	}
	return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("access denied to %s '%s'", resourceType, id))
}

func resourceID(msg proto.Message, field string) string {
	m := msg.ProtoReflect()
	f := m.Descriptor().Fields().ByName(protoreflect.Name(field))
	if f == nil {
		return ""
	}
	return m.Get(f).String()
}

// WrapUnary implements connect.Interceptor.
func (a *Authorizer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		msg, _ := req.Any().(proto.Message)
		if err := a.Check(ctx, req.Spec().Procedure, msg); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (a *Authorizer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor. The caller is checked before
// the handler starts; resource fields are checked when the request message arrives.
func (a *Authorizer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		procedure := conn.Spec().Procedure
		if err := a.Check(ctx, procedure, nil); err != nil {
			return err
		}
		return next(ctx, &checkedConn{StreamingHandlerConn: conn, check: func(msg proto.Message) error {
			return a.checkResourceField(ctx, procedure, msg)
		}})
	}
}

func (a *Authorizer) checkResourceField(ctx context.Context, procedure string, msg proto.Message) error {
	pol := a.policies[procedure]
	if pol.GetAccess() != agnesv1.Access_ACCESS_RESOURCE || pol.GetResourceField() == "" {
		return nil
	}
	return CheckResource(auth.FromContext(ctx), pol.GetResourceType(), resourceID(msg, pol.GetResourceField()))
}

type checkedConn struct {
	connect.StreamingHandlerConn
	check func(proto.Message) error
}

func (c *checkedConn) Receive(msg any) error {
	if err := c.StreamingHandlerConn.Receive(msg); err != nil {
		return err
	}
	if m, ok := msg.(proto.Message); ok {
		return c.check(m)
	}
	return nil
}
