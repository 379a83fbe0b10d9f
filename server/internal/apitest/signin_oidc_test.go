package apitest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/config"
	"github.com/agnesdata/agnes/server/internal/store"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// idp is a real OpenID provider on loopback (oauth2-proxy/mockoidc: discovery,
// JWKS, authorize and token endpoints, PKCE), with a switch that strips the
// signature from the ID tokens it issues.
type idp struct {
	*mockoidc.MockOIDC
	unsigned atomic.Bool
}

func startIDP(t *testing.T) *idp {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	require.NoError(t, err)
	p := &idp{MockOIDC: m}
	require.NoError(t, m.AddMiddleware(p.stripSignatures))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, m.Start(ln, nil))
	t.Cleanup(func() { _ = m.Shutdown() })
	return p
}

// stripSignatures rewrites the token endpoint's id_token to alg "none" while
// unsigned is set.
func (p *idp) stripSignatures(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != mockoidc.TokenEndpoint || !p.unsigned.Load() {
			next.ServeHTTP(w, r)
			return
		}
		rec := &bufferedResponse{header: http.Header{}}
		next.ServeHTTP(rec, r)
		var body map[string]any
		if json.Unmarshal(rec.body.Bytes(), &body) == nil {
			if tok, ok := body["id_token"].(string); ok {
				parts := strings.Split(tok, ".")
				head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
				body["id_token"] = head + "." + parts[1] + "."
			}
		}
		out, _ := json.Marshal(body)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.status)
		_, _ = w.Write(out)
	})
}

type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(code int)        { b.status = code }

// person is an account at the provider; tamper changes the ID token's standard
// claims (wrong nonce, audience, expiry).
type person struct {
	sub, email, name, hd string
	unverified           bool
	groups               []string
	tamper               func(*mockoidc.IDTokenClaims)
}

type personClaims struct {
	*mockoidc.IDTokenClaims
	Email         string   `json:"email,omitempty"`
	EmailVerified bool     `json:"email_verified"`
	Name          string   `json:"name,omitempty"`
	HD            string   `json:"hd,omitempty"`
	Groups        []string `json:"groups,omitempty"`
}

func (p *person) ID() string { return p.sub }

func (p *person) Userinfo([]string) ([]byte, error) {
	return json.Marshal(map[string]any{"sub": p.sub, "email": p.email})
}

func (p *person) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	if p.tamper != nil {
		p.tamper(base)
	}
	return &personClaims{IDTokenClaims: base, Email: p.email, EmailVerified: !p.unverified, Name: p.name, HD: p.hd,
		Groups: p.groups}, nil
}

// oidcServer is an Agnes server signing in with the provider: allowed domain
// example.com, groups from the token's claim, only groups starting with
// "agnes-", agnes-admins@example.com mirrored onto Admin.
func oidcServer(t *testing.T, opts ...ts.Option) (*ts.Server, *idp) {
	p := startIDP(t)
	cfg := p.Config()
	opts = append([]ts.Option{ts.WithConfig(func(c *config.Config) {
		c.OIDC = config.OIDC{ClientID: cfg.ClientID, ClientSecret: connectors.NewSecret(cfg.ClientSecret), Issuer: cfg.Issuer,
			Scopes: []string{"openid", "email", "profile", "groups"}, AllowedDomains: []string{"example.com"},
			Groups: config.GroupSync{Source: config.GroupsFromClaim, Prefix: "agnes-", AdminGroup: "agnes-admins@example.com"}}
	})}, opts...)
	return ts.New(t, opts...), p
}

// browser is an HTTP client with a cookie jar that follows redirects; accept,
// when set, is sent on every request (an API client asks for JSON).
func browser(t *testing.T, accept string) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	if accept != "" {
		c.Transport = headerTransport{"Accept": accept}
	}
	return c
}

type headerTransport map[string]string

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// get fetches a URL and returns the final response (after redirects) and body.
func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	res, err := c.Get(u)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(body)
}

// signInWithIDP runs the browser flow for who and returns the final response.
func signInWithIDP(t *testing.T, s *ts.Server, p *idp, c *http.Client, who *person, next string) (*http.Response, string) {
	t.Helper()
	p.QueueUser(who)
	return get(t, c, s.URL+"/auth/google/login?"+url.Values{"next": {next}}.Encode())
}

func sessionCookie(t *testing.T, c *http.Client, base string) *http.Cookie {
	t.Helper()
	u, _ := url.Parse(base)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "access_token" {
			return ck
		}
	}
	return nil
}

func TestSignInWithOIDCCreatesTheUserAndMirrorsGroups(t *testing.T) {
	s, p := oidcServer(t)
	ctx := context.Background()
	c := browser(t, "")
	ana := &person{sub: "g-1", email: "Ana@Example.com", name: "Ana Analyst",
		groups: []string{"agnes-sales@example.com", "agnes-admins@example.com", "marketing@example.com", "Admin"}}

	res, body := signInWithIDP(t, s, p, c, ana, "/auth/me")
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	require.Equal(t, "/auth/me", res.Request.URL.Path, "the flow ends on next")
	var me struct {
		Email, Name string
		IsAdmin     bool `json:"is_admin"`
		Groups      []struct{ Name string }
	}
	require.NoError(t, json.Unmarshal([]byte(body), &me))
	require.Equal(t, "ana@example.com", me.Email, "created on first sign-in")
	require.Equal(t, "Ana Analyst", me.Name, "name from the ID token")
	require.True(t, me.IsAdmin, "agnes-admins@example.com is mirrored onto Admin")
	var names []string
	for _, g := range me.Groups {
		names = append(names, g.Name)
	}
	require.Equal(t, []string{"Admin", "Everyone", "agnes-sales@example.com"}, names,
		"only prefixed groups; a provider group named Admin is not the Admin group")

	// The session cookie is the one browsers keep safely.
	var cookie *http.Cookie
	for _, h := range res.Request.Response.Header.Values("Set-Cookie") {
		if strings.HasPrefix(h, "access_token=") {
			cookie, _ = http.ParseSetCookie(h)
		}
	}
	require.NotNil(t, cookie, "the callback sets the session cookie")
	require.True(t, cookie.HttpOnly)
	require.Equal(t, http.SameSiteLaxMode, cookie.SameSite)

	// An admin adds Ana to a group by hand; the next sign-in replaces only the
	// provider's memberships.
	admin := s.Clients(ts.Connect, s.AdminToken)
	g, err := admin.Admin.CreateGroup(ctx, &agnesv1.CreateGroupRequest{Name: "hand-made"})
	require.NoError(t, err)
	id, err := s.App.Store.UserIDByEmail(ctx, "ana@example.com")
	require.NoError(t, err)
	_, err = admin.Admin.AddGroupMember(ctx, &agnesv1.AddGroupMemberRequest{GroupId: g.GetGroup().GetId(), UserId: id})
	require.NoError(t, err)
	ana.groups = []string{"agnes-finance@example.com"}
	res, _ = signInWithIDP(t, s, p, browser(t, ""), ana, "/auth/me")
	require.Equal(t, http.StatusOK, res.StatusCode)
	ident, err := s.App.Store.Identity(ctx, id)
	require.NoError(t, err)
	require.Equal(t, []string{"Everyone", "agnes-finance@example.com", "hand-made"}, identityGroups(ident))
	require.False(t, ident.IsAdmin)

	// A token without groups keeps the last ones.
	ana.groups = nil
	signInWithIDP(t, s, p, browser(t, ""), ana, "/")
	ident, err = s.App.Store.Identity(ctx, id)
	require.NoError(t, err)
	require.Equal(t, []string{"Everyone", "agnes-finance@example.com", "hand-made"}, identityGroups(ident))

	// The login page offers the provider.
	_, page := get(t, http.DefaultClient, s.URL+"/login")
	require.Contains(t, page, `href="/auth/google/login?next=%2f"`)
}

func identityGroups(id *store.Identity) []string {
	var out []string
	for _, g := range id.Groups {
		out = append(out, g.Name)
	}
	return out
}

// TestSignInWithOIDCRefusals: every way a sign-in is refused, as JSON for an API
// client (status and code) and as /login?error=<code> for a browser.
func TestSignInWithOIDCRefusals(t *testing.T) {
	s, p := oidcServer(t)
	ctx := context.Background()
	gone, err := s.App.Store.CreateUser(ctx, store.NewUser{Email: "gone@example.com", Name: "Gone"})
	require.NoError(t, err)
	_, err = s.App.Store.UpdateUser(ctx, gone.ID, nil, ptr(false))
	require.NoError(t, err)

	cases := []struct {
		name   string
		who    *person
		status int
		code   string
	}{
		{"wrong nonce", &person{sub: "1", email: "a@example.com", tamper: func(c *mockoidc.IDTokenClaims) { c.Nonce = "forged" }},
			http.StatusUnauthorized, "oauth_failed"},
		{"wrong audience", &person{sub: "2", email: "a@example.com", tamper: func(c *mockoidc.IDTokenClaims) {
			c.Audience = jwt.ClaimStrings{"another-client"}
		}}, http.StatusUnauthorized, "oauth_failed"},
		{"expired", &person{sub: "3", email: "a@example.com", tamper: func(c *mockoidc.IDTokenClaims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
		}}, http.StatusUnauthorized, "oauth_failed"},
		{"unverified email", &person{sub: "4", email: "a@example.com", unverified: true}, http.StatusUnauthorized, "no_email"},
		{"no email", &person{sub: "5"}, http.StatusUnauthorized, "no_email"},
		{"foreign domain", &person{sub: "6", email: "eve@evil.com"}, http.StatusForbidden, "domain_not_allowed"},
		{"foreign hosted domain", &person{sub: "7", email: "eve@example.com", hd: "evil.com"}, http.StatusForbidden, "domain_not_allowed"},
		{"no allowed group", &person{sub: "8", email: "bob@example.com", groups: []string{"marketing@example.com"}},
			http.StatusForbidden, "not_in_allowed_group"},
		{"deactivated", &person{sub: "9", email: "gone@example.com"}, http.StatusForbidden, "deactivated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, body := signInWithIDP(t, s, p, browser(t, "application/json"), tc.who, "/")
			require.Equal(t, tc.status, res.StatusCode, body)
			var e struct{ Detail, Code string }
			require.NoError(t, json.Unmarshal([]byte(body), &e), body)
			require.True(t, strings.HasPrefix(e.Detail, tc.code+":"), e.Detail)

			c := browser(t, "")
			res, _ = signInWithIDP(t, s, p, c, tc.who, "/")
			require.Equal(t, "/login", res.Request.URL.Path)
			require.Equal(t, tc.code, res.Request.URL.Query().Get("error"))
			require.Nil(t, sessionCookie(t, c, s.URL), "no session")
		})
	}
	_, err = s.App.Store.UserIDByEmail(ctx, "eve@evil.com")
	require.ErrorIs(t, err, store.ErrNotFound, "a refused person is not created")

	t.Run("unsigned", func(t *testing.T) {
		p.unsigned.Store(true)
		defer p.unsigned.Store(false)
		res, body := signInWithIDP(t, s, p, browser(t, "application/json"), &person{sub: "10", email: "a@example.com"}, "/")
		require.Equal(t, http.StatusUnauthorized, res.StatusCode, body)
	})
}

// TestSignInWithOIDCStateAndRedirects: the state must be this browser's and
// unused, and next may only be a path here.
func TestSignInWithOIDCStateAndRedirects(t *testing.T) {
	s, p := oidcServer(t)
	api := browser(t, "application/json")

	// Forged: a state this browser never got.
	res, body := get(t, api, s.URL+"/auth/google/callback?code=abc&state=forged-state")
	require.Equal(t, http.StatusBadRequest, res.StatusCode, body)

	// Replayed: the callback URL and the state cookie of a finished sign-in.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	p.QueueUser(&person{sub: "r", email: "rita@example.com"})
	start, err := noFollow.Get(s.URL + "/auth/google/login")
	require.NoError(t, err)
	start.Body.Close()
	var state *http.Cookie
	for _, ck := range start.Cookies() {
		if ck.Name == "agnes_oidc_state" {
			state = ck
		}
	}
	require.NotNil(t, state)
	require.True(t, state.HttpOnly)
	authorize, err := noFollow.Get(start.Header.Get("Location"))
	require.NoError(t, err)
	authorize.Body.Close()
	callback := authorize.Header.Get("Location")
	require.True(t, strings.HasPrefix(callback, s.URL+"/auth/google/callback?"), callback)
	for i, want := range []int{http.StatusOK, http.StatusBadRequest} {
		req, _ := http.NewRequest(http.MethodGet, callback, nil)
		req.Header.Set("Accept", "application/json")
		req.AddCookie(state)
		res, err := noFollow.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, want, res.StatusCode, "attempt %d: %s", i+1, body)
	}

	// Open redirects are refused before anything starts.
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "/ok\r\nX: y"} {
		res, body := get(t, api, s.URL+"/auth/google/login?"+url.Values{"next": {next}}.Encode())
		require.Equal(t, http.StatusBadRequest, res.StatusCode, "next %q: %s", next, body)
	}
	res = postForm(t, noFollow, s.URL+"/login", url.Values{"email": {"user@example.com"}, "password": {"password123"},
		"next": {"https://evil.example/"}})
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
}

func postForm(t *testing.T, c *http.Client, u string, v url.Values) *http.Response {
	t.Helper()
	res, err := c.PostForm(u, v)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func TestSignInWithOIDCNotConfigured(t *testing.T) {
	s := ts.New(t)
	res, _ := get(t, browser(t, ""), s.URL+"/auth/google/login")
	require.Equal(t, "/login", res.Request.URL.Path)
	require.Equal(t, "google_not_configured", res.Request.URL.Query().Get("error"))
	_, page := get(t, http.DefaultClient, s.URL+"/login")
	require.NotContains(t, page, "Sign in with Google")
	require.Contains(t, page, `name="email"`)
	require.Contains(t, page, `name="password"`)
}
