package authsvc

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/oidc"
	"github.com/agnesdata/agnes/server/internal/store"
)

// Google is sign-in with Google or any OpenID Connect provider.
type Google struct {
	Provider *oidc.Provider
	// AllowedDomains are the email domains that may sign in (empty: any). A hosted
	// domain claim (hd), when present, must be one of them too.
	AllowedDomains []string
	// RequireHostedDomain refuses accounts without an allowed hd claim: for
	// Google, where any address can own a (consumer) Google account.
	RequireHostedDomain bool
	Groups              GroupSync
}

// GroupSync mirrors the provider's groups into Agnes groups at sign-in. Only
// memberships of origin google_sync are replaced; an empty list keeps them.
type GroupSync struct {
	FromClaim bool            // the ID token's groups claim
	Directory *oidc.Directory // or the Google Admin SDK directory (nil: not used)
	// Prefix keeps only groups starting with it; a non-empty list without one
	// refuses the sign-in (not_in_allowed_group).
	Prefix        string
	AdminGroup    string // mirrored onto Admin
	EveryoneGroup string // mirrored onto Everyone
}

// The sign-in error codes of /login?error=.
const (
	errNoEmail          = "no_email"
	errDomainNotAllowed = "domain_not_allowed"
	errDeactivatedCode  = "deactivated"
	errNotInGroup       = "not_in_allowed_group"
	errOAuthFailed      = "oauth_failed"
	errNotConfigured    = "google_not_configured"
)

// signInError is a failed OIDC sign-in: a browser is sent to /login?error=<Code>,
// an API client gets the connect error (its detail starts with the code).
type signInError struct {
	Code   string
	Status connect.Code
	Detail string
}

func (e *signInError) Error() string { return e.Code + ": " + e.Detail }

func failSignIn(code string, status connect.Code, format string, a ...any) *signInError {
	return &signInError{Code: code, Status: status, Detail: fmt.Sprintf(format, a...)}
}

const (
	stateCookie = "agnes_oidc_state"
	stateTTL    = 10 * time.Minute
)

// oidcState travels with the state token, server-side: the browser holds only
// the state itself.
type oidcState struct {
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
	Next     string `json:"next"`
}

// googleLogin starts the authorization-code flow: GET /auth/google/login?next=.
func (s *Service) googleLogin(w http.ResponseWriter, r *http.Request) error {
	if s.google == nil {
		return s.oidcFailure(w, r, failSignIn(errNotConfigured, connect.CodeFailedPrecondition,
			"sign-in with Google is not configured on this server"))
	}
	next, err := nextParam(r.URL.Query().Get("next"))
	if err != nil {
		return err
	}
	state, stateHash := auth.NewOneTimeToken()
	nonce := randomString()
	verifier := oauth2.GenerateVerifier()
	data, err := json.Marshal(oidcState{Nonce: nonce, Verifier: verifier, Next: next})
	if err != nil {
		return err
	}
	if err := s.store.IssueOneTimeToken(r.Context(), &store.OneTimeToken{Hash: stateHash, Purpose: auth.PurposeOIDCState,
		Data: string(data), ExpiresAt: s.now().Add(stateTTL)}); err != nil {
		return err
	}
	hd := ""
	if len(s.google.AllowedDomains) == 1 {
		hd = s.google.AllowedDomains[0]
	}
	target, err := s.google.Provider.AuthCodeURL(r.Context(), state, nonce, verifier, hd)
	if err != nil {
		return s.oidcFailure(w, r, failSignIn(errOAuthFailed, connect.CodeUnavailable, "the identity provider is unreachable"))
	}
	// The state cookie binds the flow to this browser (login CSRF); Lax lets it
	// ride the provider's top-level redirect back.
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: state, Path: "/auth/google/", MaxAge: int(stateTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: auth.SecureRequest(r, s.secureCookies)})
	http.Redirect(w, r, target, http.StatusFound)
	return nil
}

// googleCallback finishes the flow: GET /auth/google/callback?code=&state=.
func (s *Service) googleCallback(w http.ResponseWriter, r *http.Request) error {
	if s.google == nil {
		return s.oidcFailure(w, r, failSignIn(errNotConfigured, connect.CodeFailedPrecondition,
			"sign-in with Google is not configured on this server"))
	}
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: "", Path: "/auth/google/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: auth.SecureRequest(r, s.secureCookies)})
	id, next, err := s.finishGoogle(r)
	if err != nil {
		return s.oidcFailure(w, r, err)
	}
	tok, err := s.session(id)
	if err != nil {
		return err
	}
	http.SetCookie(w, auth.SessionCookie(tok, auth.SecureRequest(r, s.secureCookies)))
	if prefersJSON(r) {
		return writeJSON(w, map[string]string{"access_token": tok, "token_type": "bearer", "email": id.Email,
			"role": roleOf(id)})
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

func roleOf(id *store.Identity) string {
	if id.IsAdmin {
		return "admin"
	}
	return "user"
}

// finishGoogle checks the state, trades the code, verifies the ID token and
// finds (or creates) the user. Every refusal is a *signInError.
func (s *Service) finishGoogle(r *http.Request) (*store.Identity, string, error) {
	ctx := r.Context()
	q := r.URL.Query()
	cookie, _ := r.Cookie(stateCookie)
	state := q.Get("state")
	if state == "" || cookie == nil || subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(state)) != 1 {
		return nil, "", failSignIn(errOAuthFailed, connect.CodeInvalidArgument, "the state does not belong to a sign-in started in this browser")
	}
	t, err := s.store.ConsumeOneTimeToken(ctx, auth.PurposeOIDCState, auth.HashToken(state), s.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", failSignIn(errOAuthFailed, connect.CodeInvalidArgument, "the sign-in state is used or expired: start again")
	}
	if err != nil {
		return nil, "", err
	}
	var st oidcState
	if err := json.Unmarshal([]byte(t.Data), &st); err != nil {
		return nil, "", fmt.Errorf("oidc state: %w", err)
	}
	if e := q.Get("error"); e != "" {
		return nil, "", failSignIn(errOAuthFailed, connect.CodeUnauthenticated, "the identity provider answered %q", truncate(e, 64))
	}
	code := q.Get("code")
	if code == "" {
		return nil, "", failSignIn(errOAuthFailed, connect.CodeInvalidArgument, "the callback carries no code")
	}
	claims, err := s.google.Provider.Exchange(ctx, code, st.Verifier, st.Nonce)
	if err != nil {
		s.log.WarnContext(ctx, "OIDC sign-in refused", "err", err)
		s.audit(ctx, "", "auth.oidc", "error.oauth_failed", nil)
		return nil, "", failSignIn(errOAuthFailed, connect.CodeUnauthenticated, "the identity provider's answer did not verify")
	}
	id, err := s.admit(ctx, claims)
	if err != nil {
		return nil, "", err
	}
	return id, st.Next, nil
}

// admit applies the sign-in rules to verified claims: a verified email of an
// allowed domain, the allowed groups, an active account; it creates the user on
// first sign-in and mirrors their groups.
func (s *Service) admit(ctx context.Context, c *oidc.Claims) (*store.Identity, error) {
	email := store.NormalizeEmail(c.Email)
	_, domain, ok := strings.Cut(email, "@")
	if !ok || domain == "" || !c.EmailVerified {
		s.audit(ctx, "", "auth.oidc", "error.no_email", map[string]any{"subject": c.Subject})
		return nil, failSignIn(errNoEmail, connect.CodeUnauthenticated, "the identity provider did not vouch for an email address")
	}
	g := s.google
	if allowed := g.AllowedDomains; len(allowed) > 0 {
		hd := strings.ToLower(c.HostedDomain)
		if !slices.Contains(allowed, domain) || (hd != "" && !slices.Contains(allowed, hd)) || (g.RequireHostedDomain && hd == "") {
			s.audit(ctx, "", "auth.oidc", "error.domain_not_allowed", map[string]any{"email": email})
			return nil, failSignIn(errDomainNotAllowed, connect.CodePermissionDenied, "accounts of %s may not sign in here", domain)
		}
	}
	groups, err := s.providerGroups(ctx, email, c)
	if err != nil {
		return nil, err
	}
	user, err := s.store.CredentialsByEmail(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		name := strings.TrimSpace(c.Name)
		if name == "" {
			name, _, _ = strings.Cut(email, "@")
		}
		_, err = s.store.CreateUser(ctx, store.NewUser{Email: email, Name: name, By: "system:oidc"})
		if err != nil && !errors.Is(err, store.ErrAlreadyExists) { // a concurrent first sign-in created it
			return nil, err
		}
		if err == nil {
			s.audit(ctx, "", "user.create", "success", map[string]any{"email": email, "via": "oidc"})
		}
		user, err = s.store.CredentialsByEmail(ctx, email)
	}
	if err != nil {
		return nil, err
	}
	if !user.Active {
		s.audit(ctx, user.ID, "auth.oidc", "error.deactivated", nil)
		return nil, failSignIn(errDeactivatedCode, connect.CodePermissionDenied, "this account is deactivated")
	}
	if groups != nil {
		if err := s.store.SyncMemberships(ctx, user.ID, store.MemberGoogleSync, groups, "system:google-sync"); err != nil {
			return nil, err
		}
	}
	id, err := s.store.Identity(ctx, user.ID)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, id.UserID, "auth.oidc", "success", map[string]any{"groups": len(groups)})
	return id, nil
}

// providerGroups returns the Agnes group names the user's provider groups map
// to, or nil when there is nothing to sync (off, or an empty list: keep the old).
func (s *Service) providerGroups(ctx context.Context, email string, c *oidc.Claims) ([]string, error) {
	sync := s.google.Groups
	var raw []string
	switch {
	case sync.Directory != nil:
		var err error
		if raw, err = sync.Directory.Groups(ctx, email); err != nil {
			// The sign-in goes on with the memberships of the last sync.
			s.log.ErrorContext(ctx, "group sync: directory unavailable, memberships kept", "err", err)
			return nil, nil
		}
	case sync.FromClaim:
		raw = c.Groups
	default:
		return nil, nil
	}
	if len(raw) == 0 {
		return nil, nil
	}
	admin, everyone, prefix := strings.ToLower(sync.AdminGroup), strings.ToLower(sync.EveryoneGroup), strings.ToLower(sync.Prefix)
	names := []string{}
	for _, g := range raw {
		lg := strings.ToLower(strings.TrimSpace(g))
		switch {
		case lg == "":
		case admin != "" && lg == admin:
			names = append(names, store.GroupAdmin)
		case everyone != "" && lg == everyone:
			names = append(names, store.GroupEveryone)
		case g == store.GroupAdmin || g == store.GroupEveryone:
			// A provider group that happens to share a system group's name is
			// never mirrored onto it: only the configured mapping grants Admin.
		case prefix == "" || strings.HasPrefix(lg, prefix):
			names = append(names, strings.TrimSpace(g))
		}
	}
	if prefix != "" && len(names) == 0 {
		s.audit(ctx, "", "auth.oidc", "error.not_in_allowed_group", map[string]any{"email": email})
		return nil, failSignIn(errNotInGroup, connect.CodePermissionDenied, "%s is in none of the groups allowed to sign in", email)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// oidcFailure answers a failed sign-in: a browser goes to /login?error=<code>,
// an API client (Accept: application/json) gets the error itself.
func (s *Service) oidcFailure(w http.ResponseWriter, r *http.Request, err error) error {
	var se *signInError
	if !errors.As(err, &se) {
		return err
	}
	if prefersJSON(r) {
		return connect.NewError(se.Status, se)
	}
	http.Redirect(w, r, "/login?"+url.Values{"error": {se.Code}}.Encode(), http.StatusSeeOther)
	return nil
}

// prefersJSON tells an API client from a browser.
func prefersJSON(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(v)
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
