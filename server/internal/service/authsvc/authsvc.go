// Package authsvc implements agnes.v1.AuthService — bootstrap, password sign-in,
// sessions, logout, personal access tokens, magic links, invites and password
// reset — and the sign-in routes around it: the /login page, Google (any OIDC
// provider) sign-in, the magic link's GET form and the CLI's browser sign-in.
package authsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/mail"
	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/service"
	"github.com/agnesdata/agnes/server/internal/store"
)

// Store is what sign-in and tokens read and write.
type Store interface {
	store.Users
	store.Identities
	store.Tokens
	store.OneTimeTokens
	store.Audit
	EffectiveAccess(ctx context.Context, userID string) ([]*store.EffectiveGrant, error)
	SyncMemberships(ctx context.Context, userID, source string, groups []string, by string) error
}

// Service implements AuthService.
type Service struct {
	store         Store
	issuer        *auth.Issuer
	failures      *access.AccountThrottle
	opts          Options
	secureCookies bool
	baseURL       func() string
	mailer        mail.Sender
	google        *Google
	log           *slog.Logger
	now           func() time.Time
}

var _ agnesv1connect.AuthServiceHandler = (*Service)(nil)

// Options configure the service.
type Options struct {
	// SecureCookies marks the session cookie Secure (HTTPS deployments).
	SecureCookies bool
	// MaxTokenDays bounds a personal access token's lifetime.
	MaxTokenDays int
	// AllowNonExpiringTokens lets a token be created without an expiry.
	AllowNonExpiringTokens bool
	// BaseURL is where mailed links and the OIDC redirect point: the public URL
	// ("https://agnes.example.com", no trailing slash).
	BaseURL func() string
	// Mailer sends sign-in mails; nil: none can be sent (magic links and
	// self-service reset answer FailedPrecondition; invites return the link only).
	Mailer mail.Sender
	// Google is OIDC sign-in; nil: off.
	Google *Google
	// Log receives what goes wrong off the request path (mail delivery).
	Log *slog.Logger
}

// New returns the service.
func New(st Store, issuer *auth.Issuer, opts Options) *Service {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.BaseURL == nil {
		opts.BaseURL = func() string { return "http://127.0.0.1:8000" }
	}
	return &Service{store: st, issuer: issuer, secureCookies: opts.SecureCookies, opts: opts, now: time.Now,
		failures: access.NewAccountThrottle(), baseURL: opts.BaseURL, mailer: opts.Mailer, google: opts.Google, log: opts.Log}
}

func (s *Service) audit(ctx context.Context, userID, action, result string, params map[string]any) {
	info := reqctx.From(ctx)
	s.store.Audit(ctx, store.AuditEntry{UserID: userID, Action: action, Params: params, Result: result,
		ClientIP: info.ClientIP, RequestID: info.RequestID})
}

// Bootstrap implements AuthService.
func (s *Service) Bootstrap(ctx context.Context, req *agnesv1.BootstrapRequest) (*agnesv1.BootstrapResponse, error) {
	email, err := service.Email(req.GetEmail())
	if err != nil {
		return nil, err
	}
	// Closed already: refuse before spending a hash on it.
	if closed, err := s.store.AnyPassword(ctx); err != nil {
		return nil, err
	} else if closed {
		return nil, apierr.PermissionDenied("bootstrap is closed: a user with a password already exists")
	}
	hash, err := service.Password(ctx, req.GetPassword())
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(req.GetName())
	if name == "" {
		name, _, _ = strings.Cut(email, "@")
	}
	u, err := s.store.Bootstrap(ctx, email, name, hash)
	var rule *store.RuleError
	if errors.As(err, &rule) {
		return nil, apierr.PermissionDenied("%s", rule.Msg)
	}
	if err != nil {
		return nil, err
	}
	tok, _, err := s.issuer.Session(u.ID, u.Email)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, u.ID, "auth.bootstrap", "success", map[string]any{"email": u.Email})
	return &agnesv1.BootstrapResponse{AccessToken: tok, TokenType: "bearer", UserId: u.ID, Email: u.Email, Role: "admin"}, nil
}

// dummyHash is verified against when the user does not exist, so that "no such user"
// and "wrong password" take the same time.
var dummyHash, _ = auth.HashPassword("agnes-timing-equalizer")

var errBadCredentials = apierr.Unauthenticated("invalid email or password")

// signIn checks email and password and returns the user's identity.
func (s *Service) signIn(ctx context.Context, email, password string) (*store.Identity, error) {
	if strings.TrimSpace(email) == "" || password == "" {
		return nil, apierr.InvalidArgument("email and password are required")
	}
	account := store.NormalizeEmail(email)
	undo, wait, ok := s.failures.Attempt(account)
	if !ok {
		err := connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"too many failed sign-ins for this account (the limit is %d per %s); try again later",
			access.AccountFailures, access.AccountFailureWindow))
		err.Meta().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		return nil, err
	}
	failed := false // the attempt counts as a failure unless it turns out not to be one
	defer func() {
		if !failed {
			undo()
		}
	}()
	c, err := s.store.CredentialsByEmail(ctx, email)
	if errors.Is(err, store.ErrNotFound) || (err == nil && c.PasswordHash == "") {
		if _, err := service.HashError(auth.VerifyPasswordContext(ctx, password, dummyHash)); err != nil {
			return nil, err
		}
		failed = true
		s.audit(ctx, "", "auth.login", "error.unauthenticated", map[string]any{"email": account})
		return nil, errBadCredentials
	}
	if err != nil {
		return nil, err
	}
	ok, err = service.HashError(auth.VerifyPasswordContext(ctx, password, c.PasswordHash))
	if errors.Is(err, context.Canceled) || connect.CodeOf(err) == connect.CodeUnavailable {
		return nil, err
	}
	if err != nil || !ok {
		failed = true
		s.audit(ctx, c.ID, "auth.login", "error.unauthenticated", map[string]any{"email": c.Email})
		return nil, errBadCredentials
	}
	if !c.Active {
		s.audit(ctx, c.ID, "auth.login", "error.deactivated", nil)
		return nil, apierr.Unauthenticated("account deactivated")
	}
	id, err := s.store.Identity(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, c.ID, "auth.login", "success", nil)
	return id, nil
}

// CreateSessionToken implements AuthService.
func (s *Service) CreateSessionToken(ctx context.Context, req *agnesv1.CreateSessionTokenRequest) (*agnesv1.CreateSessionTokenResponse, error) {
	id, err := s.signIn(ctx, req.GetEmail(), req.GetPassword())
	if err != nil {
		return nil, err
	}
	tok, _, err := s.issuer.Session(id.UserID, id.Email)
	if err != nil {
		return nil, err
	}
	return &agnesv1.CreateSessionTokenResponse{AccessToken: tok, TokenType: "bearer", UserId: id.UserID,
		Email: id.Email, Role: service.Role(id.IsAdmin)}, nil
}

// PasswordLogin implements AuthService.
func (s *Service) PasswordLogin(ctx context.Context, req *agnesv1.PasswordLoginRequest) (*agnesv1.PasswordLoginResponse, error) {
	id, err := s.signIn(ctx, req.GetEmail(), req.GetPassword())
	if err != nil {
		return nil, err
	}
	tok, _, err := s.issuer.Session(id.UserID, id.Email)
	if err != nil {
		return nil, err
	}
	service.SetResponseHeader(ctx, "Set-Cookie", auth.SessionCookie(tok, s.secureCookies).String())
	return &agnesv1.PasswordLoginResponse{AccessToken: tok, TokenType: "bearer", Email: id.Email, Role: service.Role(id.IsAdmin)}, nil
}

// GetMe implements AuthService.
func (s *Service) GetMe(ctx context.Context, _ *agnesv1.GetMeRequest) (*agnesv1.GetMeResponse, error) {
	p := auth.FromContext(ctx)
	return &agnesv1.GetMeResponse{Id: p.UserID, Email: p.Email, Name: p.Name, IsAdmin: p.IsAdmin,
		Groups: service.GroupRefs(p.Groups), TokenType: p.TokenType, Scope: p.Scope}, nil
}

// Logout implements AuthService.
func (s *Service) Logout(ctx context.Context, _ *agnesv1.LogoutRequest) (*agnesv1.LogoutResponse, error) {
	p := auth.FromContext(ctx)
	switch p.TokenType {
	case auth.TypeSession:
		if err := s.store.RevokeSession(ctx, p.TokenID, p.UserID, time.Unix(p.ExpiresAt, 0)); err != nil {
			return nil, err
		}
	case auth.TypePAT:
		// Logging out with a personal access token ends that token: the caller
		// asked for this credential to stop working.
		if err := s.store.RevokePAT(ctx, p.TokenID, p.UserID); err != nil {
			return nil, err
		}
	}
	service.SetResponseHeader(ctx, "Set-Cookie", auth.ClearedCookie(s.secureCookies).String())
	s.audit(ctx, p.UserID, "auth.logout", "success", nil)
	return &agnesv1.LogoutResponse{Status: "logged_out"}, nil
}

// defaultTokenDays is a new token's lifetime unless asked otherwise (within
// Options.MaxTokenDays).
const defaultTokenDays = 90

// CreateToken implements AuthService.
func (s *Service) CreateToken(ctx context.Context, req *agnesv1.CreateTokenRequest) (*agnesv1.CreateTokenResponse, error) {
	p := auth.FromContext(ctx)
	name := strings.TrimSpace(req.GetName())
	if name == "" {
		return nil, apierr.InvalidArgument("token name is required")
	}
	if len(name) > 200 {
		return nil, apierr.InvalidArgument("token name must be at most 200 characters")
	}
	scope := req.GetScope()
	switch scope {
	case "":
		scope = store.ScopeGeneral
	case store.ScopeGeneral, store.ScopeReadOnly:
	default:
		return nil, apierr.InvalidArgument("scope %q must be %q or %q", scope, store.ScopeGeneral, store.ScopeReadOnly)
	}
	now := s.now().UTC().Truncate(time.Second)
	var expires *time.Time
	switch {
	case req.NoExpiry && (req.ExpiresInDays != nil || req.TtlSeconds != nil):
		return nil, apierr.InvalidArgument("no_expiry cannot be combined with expires_in_days or ttl_seconds")
	case req.NoExpiry && !s.opts.AllowNonExpiringTokens:
		return nil, apierr.InvalidArgument("tokens must expire on this server (at most %d days: tokens.max_days); "+
			"an admin can allow tokens without expiry (tokens.allow_non_expiring)", s.opts.MaxTokenDays)
	case req.NoExpiry:
	case req.TtlSeconds != nil:
		if maxSeconds := int64(s.opts.MaxTokenDays) * 86400; req.GetTtlSeconds() <= 0 || req.GetTtlSeconds() > maxSeconds {
			return nil, apierr.InvalidArgument("ttl_seconds must be between 1 and %d (tokens.max_days is %d)", maxSeconds, s.opts.MaxTokenDays)
		}
		t := now.Add(time.Duration(req.GetTtlSeconds()) * time.Second)
		expires = &t
	default:
		days := int32(min(defaultTokenDays, s.opts.MaxTokenDays))
		if req.ExpiresInDays != nil {
			days = req.GetExpiresInDays()
		}
		if days <= 0 || int(days) > s.opts.MaxTokenDays {
			return nil, apierr.InvalidArgument("expires_in_days must be between 1 and %d (tokens.max_days)", s.opts.MaxTokenDays)
		}
		t := now.AddDate(0, 0, int(days))
		expires = &t
	}
	id := uuid.NewString()
	tok, err := s.issuer.PAT(p.UserID, p.Email, id, expires)
	if err != nil {
		return nil, err
	}
	row := &store.PAT{ID: id, UserID: p.UserID, Name: name, TokenHash: auth.HashToken(tok),
		Prefix: strings.ReplaceAll(id, "-", "")[:8], CreatedAt: now, ExpiresAt: expires, Scope: scope}
	if err := s.store.CreatePAT(ctx, row); err != nil {
		return nil, err
	}
	s.audit(ctx, p.UserID, "token.create", "success", map[string]any{"token_id": id, "name": name, "scope": scope})
	return &agnesv1.CreateTokenResponse{Id: id, Name: name, Prefix: row.Prefix, Token: tok,
		ExpiresAt: service.Timestamp(expires), CreatedAt: service.Timestamp(&now), Scope: scope}, nil
}

func tokenInfo(p *store.PAT, admin bool) *agnesv1.TokenInfo {
	t := &agnesv1.TokenInfo{Id: p.ID, Name: p.Name, Prefix: p.Prefix, CreatedAt: service.Timestamp(&p.CreatedAt),
		ExpiresAt: service.Timestamp(p.ExpiresAt), LastUsedAt: service.Timestamp(p.LastUsedAt),
		RevokedAt: service.Timestamp(p.RevokedAt), Scope: p.Scope}
	if admin {
		t.UserId, t.UserEmail, t.LastUsedIp = p.UserID, p.UserEmail, p.LastUsedIP
	}
	return t
}

// ListTokens implements AuthService.
func (s *Service) ListTokens(ctx context.Context, _ *agnesv1.ListTokensRequest) (*agnesv1.ListTokensResponse, error) {
	rows, err := s.store.ListPATs(ctx, auth.FromContext(ctx).UserID, 10000, 0)
	if err != nil {
		return nil, err
	}
	out := &agnesv1.ListTokensResponse{Tokens: []*agnesv1.TokenInfo{}}
	for _, r := range rows {
		out.Tokens = append(out.Tokens, tokenInfo(r, false))
	}
	return out, nil
}

var errTokenNotFound = apierr.NotFound("token not found")

// GetToken implements AuthService.
func (s *Service) GetToken(ctx context.Context, req *agnesv1.GetTokenRequest) (*agnesv1.GetTokenResponse, error) {
	row, err := s.store.GetPAT(ctx, req.GetTokenId())
	if errors.Is(err, store.ErrNotFound) || (err == nil && row.UserID != auth.FromContext(ctx).UserID) {
		return nil, errTokenNotFound
	}
	if err != nil {
		return nil, err
	}
	return &agnesv1.GetTokenResponse{Token: tokenInfo(row, false)}, nil
}

// RevokeToken implements AuthService.
func (s *Service) RevokeToken(ctx context.Context, req *agnesv1.RevokeTokenRequest) (*agnesv1.RevokeTokenResponse, error) {
	p := auth.FromContext(ctx)
	if err := s.store.RevokePAT(ctx, req.GetTokenId(), p.UserID); errors.Is(err, store.ErrNotFound) {
		return nil, errTokenNotFound
	} else if err != nil {
		return nil, err
	}
	s.audit(ctx, p.UserID, "token.revoke", "success", map[string]any{"token_id": req.GetTokenId()})
	return &agnesv1.RevokeTokenResponse{}, nil
}

// ListAllTokens implements AuthService.
func (s *Service) ListAllTokens(ctx context.Context, req *agnesv1.ListAllTokensRequest) (*agnesv1.ListAllTokensResponse, error) {
	limit, offset, err := service.Page(req.GetLimit(), req.GetOffset(), 1000, 10000)
	if err != nil {
		return nil, err
	}
	rows, err := s.store.ListPATs(ctx, "", limit, offset)
	if err != nil {
		return nil, err
	}
	out := &agnesv1.ListAllTokensResponse{Tokens: []*agnesv1.TokenInfo{}}
	for _, r := range rows {
		out.Tokens = append(out.Tokens, tokenInfo(r, true))
	}
	return out, nil
}

// AdminRevokeToken implements AuthService.
func (s *Service) AdminRevokeToken(ctx context.Context, req *agnesv1.AdminRevokeTokenRequest) (*agnesv1.AdminRevokeTokenResponse, error) {
	if err := s.store.RevokePAT(ctx, req.GetTokenId(), ""); errors.Is(err, store.ErrNotFound) {
		return nil, errTokenNotFound
	} else if err != nil {
		return nil, err
	}
	s.audit(ctx, auth.FromContext(ctx).UserID, "token.admin_revoke", "success", map[string]any{"token_id": req.GetTokenId()})
	return &agnesv1.AdminRevokeTokenResponse{}, nil
}

// GetMyEffectiveAccess implements AuthService.
func (s *Service) GetMyEffectiveAccess(ctx context.Context, _ *agnesv1.GetMyEffectiveAccessRequest) (*agnesv1.GetMyEffectiveAccessResponse, error) {
	p := auth.FromContext(ctx)
	items, err := service.EffectiveAccess(ctx, s.store, p.UserID)
	if err != nil {
		return nil, err
	}
	return &agnesv1.GetMyEffectiveAccessResponse{IsAdmin: p.IsAdmin, Items: items}, nil
}
