// Package service holds what the RPC implementations share: conversions from store
// rows to API messages and small request-validation helpers. Each service lives in
// its own subpackage and stays thin: check, convert, call the store or engine.
package service

import (
	"context"
	"errors"
	"net/mail"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/store"
)

// Timestamp converts an optional time.
func Timestamp(t *time.Time) *timestamppb.Timestamp {
	if t == nil || t.IsZero() {
		return nil
	}
	return timestamppb.New(*t)
}

// GroupRefs converts a user's groups.
func GroupRefs(gs []store.GroupRef) []*agnesv1.GroupRef {
	out := make([]*agnesv1.GroupRef, 0, len(gs))
	for _, g := range gs {
		out = append(out, &agnesv1.GroupRef{Id: g.ID, Name: g.Name, IsSystem: g.IsSystem, Origin: Origin(g.IsSystem)})
	}
	return out
}

// Origin is "system" for the seeded groups, "custom" for the rest.
func Origin(isSystem bool) string {
	if isSystem {
		return "system"
	}
	return "custom"
}

// Role is the cosmetic role string of the Python API.
func Role(isAdmin bool) string {
	if isAdmin {
		return "admin"
	}
	return "user"
}

// User converts a user row.
func User(u *store.User) *agnesv1.User {
	return &agnesv1.User{
		Id: u.ID, Email: u.Email, Name: u.Name, Role: Role(u.IsAdmin), IsAdmin: u.IsAdmin,
		Groups: GroupRefs(u.Groups), Active: u.Active, HasPassword: u.HasPassword,
		CreatedAt: timestamppb.New(u.CreatedAt), DeactivatedAt: Timestamp(u.DeactivatedAt),
	}
}

// Email validates and normalizes an email address.
func Email(raw string) (string, error) {
	e := store.NormalizeEmail(raw)
	a, err := mail.ParseAddress(e)
	if e == "" || err != nil || a.Address != e || !strings.Contains(e, "@") {
		return "", apierr.InvalidArgument("invalid email address %q", raw)
	}
	return e, nil
}

// Password validates a new password and returns its hash (within the
// server-wide bound on concurrent hashing: 503 when it stays busy).
func Password(ctx context.Context, pw string) (string, error) {
	if len(pw) < auth.MinPasswordLength {
		return "", apierr.InvalidArgument("password must be at least %d characters", auth.MinPasswordLength)
	}
	if len(pw) > 1024 {
		return "", apierr.InvalidArgument("password must be at most 1024 characters")
	}
	return HashError(auth.HashPasswordContext(ctx, pw))
}

// HashError turns a busy hashing bound into a 503 that says so.
func HashError[T any](v T, err error) (T, error) {
	if errors.Is(err, auth.ErrBusy) {
		return v, apierr.Unavailable("%s", auth.ErrBusy.Error())
	}
	return v, err
}

// Page clamps a limit/offset pair: limit 0 means def; outside 1..max is an error.
func Page(limit, offset, def, max int32) (int, int, error) {
	if limit == 0 {
		limit = def
	}
	if limit < 1 || limit > max {
		return 0, 0, apierr.InvalidArgument("limit must be between 1 and %d", max)
	}
	if offset < 0 {
		return 0, 0, apierr.InvalidArgument("offset must not be negative")
	}
	return int(limit), int(offset), nil
}

// SetResponseHeader adds a header to the RPC's response (cookies, Retry-After).
func SetResponseHeader(ctx context.Context, key, value string) {
	if ci, ok := connect.CallInfoForHandlerContext(ctx); ok {
		ci.ResponseHeader().Add(key, value)
	}
}

// EffectiveAccess lists a user's explicit grants.
func EffectiveAccess(ctx context.Context, st interface {
	EffectiveAccess(ctx context.Context, userID string) ([]*store.EffectiveGrant, error)
}, userID string) ([]*agnesv1.EffectiveGrant, error) {
	grants, err := st.EffectiveAccess(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]*agnesv1.EffectiveGrant, 0, len(grants))
	for _, g := range grants {
		out = append(out, &agnesv1.EffectiveGrant{ResourceType: g.ResourceType, ResourceId: g.ResourceID, ViaGroups: GroupRefs(g.Via)})
	}
	return out, nil
}
