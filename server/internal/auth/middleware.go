package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/agnesdata/agnes/server/internal/lru"
	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/store"
)

// CookieName is the session cookie.
const CookieName = "access_token"

// Store is what authentication reads on every request (cached in front of the
// real store) and the one write it makes, a token's last use.
type Store interface {
	store.Identities
	store.Tokens
}

// Authenticator resolves credentials into a Principal.
type Authenticator struct {
	issuer   *Issuer
	store    Store
	now      func() time.Time
	touches  *lru.Cache[string, time.Time] // token|ip → last recorded use
	services []serviceToken
}

// touchInterval bounds last-used bookkeeping to one write per token and IP per
// interval; touchMemory bounds how many (token, IP) pairs are remembered.
const (
	touchInterval = time.Minute
	touchMemory   = 10_000
)

// NewAuthenticator returns an authenticator over the issuer's secret and the store.
func NewAuthenticator(issuer *Issuer, st Store) *Authenticator {
	return &Authenticator{issuer: issuer, store: st, now: time.Now, touches: lru.New[string, time.Time](touchMemory)}
}

// Middleware attaches the Principal (or the reason presented credentials failed) to
// the request context. It never rejects: whether an RPC needs a caller is the
// authorization interceptor's decision, taken from the API's policy options.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := TokenFromRequest(r)
		if token == "" {
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		p, err := a.Authenticate(ctx, token)
		if err != nil {
			ctx = withFailure(ctx, publicReason(ctx, err))
		} else {
			ctx = WithPrincipal(ctx, p)
			reqctx.From(ctx).SetUser(p.Email)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// TokenFromRequest reads `Authorization: Bearer <t>`, else the access_token cookie.
func TokenFromRequest(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value
	}
	return ""
}

// Failure reasons, shown to the caller as the 401 detail.
var (
	errRevoked     = errors.New("token revoked")
	errUnknownPAT  = errors.New("token unknown")
	errExpiredPAT  = errors.New("token expired")
	errDeactivated = errors.New("account deactivated")
	errEnded       = errors.New("session ended: the password changed or the account was deactivated since; sign in again")
	errNoUser      = errors.New("user not found")
)

// publicReason is the 401 detail for a refused credential; unexpected failures
// (a database error) are logged and not described.
func publicReason(ctx context.Context, err error) string {
	for _, known := range []error{ErrInvalidToken, errRevoked, errUnknownPAT, errExpiredPAT, errDeactivated, errNoUser, errEnded} {
		if errors.Is(err, known) {
			return known.Error()
		}
	}
	slog.ErrorContext(ctx, "authentication failed", "err", err, "request_id", reqctx.From(ctx).RequestID)
	return "authentication unavailable"
}

// ServiceToken is a shared secret a trusted service presents as its bearer token
// (the scheduler sidecar's SCHEDULER_API_TOKEN). It acts as an admin, but only on
// the procedures listed.
type ServiceToken struct {
	Name       string   // "scheduler": the caller is <name>@system.local
	Secret     string   // at least 32 characters
	Procedures []string // procedures and route names it may call
}

type serviceToken struct {
	digest    [sha256.Size]byte
	principal *Principal
}

// AddServiceToken accepts a service's shared secret from now on.
func (a *Authenticator) AddServiceToken(t ServiceToken) error {
	if len(t.Secret) < 32 {
		return fmt.Errorf("service token %s: the secret must be at least 32 characters", t.Name)
	}
	allowed := map[string]bool{}
	for _, p := range t.Procedures {
		allowed[strings.TrimPrefix(p, "/")] = true
	}
	id := &store.Identity{UserID: "system:" + t.Name, Email: t.Name + "@system.local", Name: t.Name,
		Active: true, IsAdmin: true, Grants: map[store.Resource]struct{}{}}
	a.services = append(a.services, serviceToken{digest: sha256.Sum256([]byte(t.Secret)),
		principal: &Principal{Identity: id, TokenType: TypeService, TokenID: t.Name, Scope: store.ScopeGeneral, procedures: allowed}})
	return nil
}

// service returns the principal of a service token, comparing digests in
// constant time so that neither the secret nor its length leaks.
func (a *Authenticator) service(token string) *Principal {
	got := sha256.Sum256([]byte(token))
	var match *Principal
	for _, s := range a.services {
		if subtle.ConstantTimeCompare(got[:], s.digest[:]) == 1 {
			match = s.principal
		}
	}
	return match
}

// Authenticate verifies a token and loads the caller's current identity.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (*Principal, error) {
	if p := a.service(token); p != nil {
		return p, nil
	}
	c, err := a.issuer.Verify(token)
	if err != nil {
		return nil, ErrInvalidToken
	}
	p := &Principal{TokenType: c.Type, TokenID: c.ID, Scope: store.ScopeGeneral}
	if c.ExpiresAt != nil {
		p.ExpiresAt = c.ExpiresAt.Unix()
	}
	switch c.Type {
	case TypeSession:
		revoked, err := a.store.SessionRevoked(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		if revoked {
			return nil, errRevoked
		}
	case TypePAT:
		row, err := a.store.GetPAT(ctx, c.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, errUnknownPAT
		case err != nil:
			return nil, err
		case row.UserID != c.Subject || row.TokenHash != HashToken(token):
			return nil, errUnknownPAT
		case row.RevokedAt != nil:
			return nil, errRevoked
		case row.ExpiresAt != nil && a.now().After(*row.ExpiresAt):
			return nil, errExpiredPAT
		}
		if row.Scope == store.ScopeReadOnly {
			p.Scope = store.ScopeReadOnly
		}
		a.touch(row.ID, reqctx.From(ctx).ClientIP)
	}
	id, err := a.store.Identity(ctx, c.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoUser
	}
	if err != nil {
		return nil, err
	}
	if !id.Active {
		return nil, errDeactivated
	}
	// JWTs carry whole seconds: a session issued in the second of the change
	// stays valid (the user who just changed their password signs in again).
	if c.Type == TypeSession && c.IssuedAt != nil && c.IssuedAt.Before(id.SessionsValidAfter.Truncate(time.Second)) {
		return nil, errEnded
	}
	p.Identity = id
	return p, nil
}

// touch records a token's use off the request path, at most once per interval
// per token and IP.
func (a *Authenticator) touch(id, ip string) {
	now, key := a.now(), id+"|"+ip
	if last, ok := a.touches.Get(key); ok && now.Sub(last) < touchInterval {
		return
	}
	a.touches.Put(key, now)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.store.TouchPAT(ctx, id, ip, now.UTC()); err != nil {
			slog.Warn("record token use", "token", id, "err", err)
		}
	}()
}

// SessionCookie is the cookie that carries a session token to browsers.
func SessionCookie(token string, secure bool) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: token, Path: "/", MaxAge: int(SessionTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: secure}
}

// ClearedCookie removes the session cookie.
func ClearedCookie(secure bool) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: secure}
}
