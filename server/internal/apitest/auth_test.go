package apitest

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/auth"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// getMeCode calls GetMe with a token over a protocol and returns the outcome.
func getMeCode(t *testing.T, s *ts.Server, p ts.Protocol, token string) string {
	t.Helper()
	if p == ts.REST {
		res := s.REST(t, http.MethodGet, "/auth/me", token, nil)
		if res.Status == http.StatusOK {
			return "ok"
		}
		_, code := res.Error(t)
		return code
	}
	_, err := s.Clients(p, token).Auth.GetMe(context.Background(), &agnesv1.GetMeRequest{})
	if err != nil {
		return connect.CodeOf(err).String()
	}
	return "ok"
}

var allProtocols = []ts.Protocol{ts.Connect, ts.GRPC, ts.REST}

func TestBadTokensAreUnauthenticated(t *testing.T) {
	s := ts.New(t)
	good := s.Session(t, s.UserID, "user@example.com")
	parts := strings.Split(good, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	forged := strings.Replace(string(payload), `"user@example.com"`, `"admin@example.com"`, 1)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]

	expired, err := jwt.NewWithClaims(jwt.SigningMethodHS256, &auth.Claims{Email: "user@example.com", Type: auth.TypeSession,
		RegisteredClaims: jwt.RegisteredClaims{Subject: s.UserID, ID: "j1",
			IssuedAt:  jwt.NewNumericDate(time.Now().Add(-48 * time.Hour)),
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(-24 * time.Hour))}}).SignedString([]byte(ts.Secret))
	require.NoError(t, err)

	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, &auth.Claims{Email: "admin@example.com", Type: auth.TypeSession,
		RegisteredClaims: jwt.RegisteredClaims{Subject: s.AdminID, ID: "j2", IssuedAt: jwt.NewNumericDate(time.Now()),
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)

	otherKey, err := jwt.NewWithClaims(jwt.SigningMethodHS256, &auth.Claims{Email: "admin@example.com", Type: auth.TypeSession,
		RegisteredClaims: jwt.RegisteredClaims{Subject: s.AdminID, ID: "j3", IssuedAt: jwt.NewNumericDate(time.Now()),
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}).SignedString([]byte("another-secret-another-secret-another"))
	require.NoError(t, err)

	for name, tok := range map[string]string{
		"tampered": tampered, "expired": expired, "alg none": none, "foreign key": otherKey, "garbage": "not.a.jwt",
	} {
		for _, p := range allProtocols {
			t.Run(name+"/"+string(p), func(t *testing.T) {
				require.Equal(t, "unauthenticated", getMeCode(t, s, p, tok))
			})
		}
	}
	for _, p := range allProtocols {
		require.Equal(t, "ok", getMeCode(t, s, p, good), "control: the untampered token works over %s", p)
	}
}

func TestPersonalAccessTokens(t *testing.T) {
	s := ts.New(t)
	ctx := context.Background()
	user := s.Clients(ts.Connect, s.UserToken)

	created, err := user.Auth.CreateToken(ctx, &agnesv1.CreateTokenRequest{Name: "laptop"})
	require.NoError(t, err)
	require.NotEmpty(t, created.GetToken())
	require.Equal(t, strings.ReplaceAll(created.GetId(), "-", "")[:8], created.GetPrefix())
	require.WithinDuration(t, time.Now().AddDate(0, 0, 90), created.GetExpiresAt().AsTime(), time.Minute)

	// The token works on every protocol and says it is a PAT.
	for _, p := range allProtocols {
		require.Equal(t, "ok", getMeCode(t, s, p, created.GetToken()))
	}
	me, err := s.Clients(ts.GRPC, created.GetToken()).Auth.GetMe(ctx, &agnesv1.GetMeRequest{})
	require.NoError(t, err)
	require.Equal(t, "pat", me.GetTokenType())

	// Only the hash is stored; the listing never shows the token.
	var stored string
	row, err := s.App.Store.GetPAT(ctx, created.GetId())
	require.NoError(t, err)
	stored = row.TokenHash
	require.Equal(t, auth.HashToken(created.GetToken()), stored)
	require.NotContains(t, stored, created.GetToken())
	list := s.REST(t, http.MethodGet, "/auth/tokens", s.UserToken, nil)
	require.Equal(t, http.StatusOK, list.Status)
	require.NotContains(t, string(list.Body), created.GetToken())
	var items []map[string]any
	list.JSON(t, &items)
	require.Len(t, items, 1)
	require.Equal(t, "laptop", items[0]["name"])

	// A PAT cannot mint more PATs: that needs an interactive session.
	_, err = s.Clients(ts.Connect, created.GetToken()).Auth.CreateToken(ctx, &agnesv1.CreateTokenRequest{Name: "x"})
	require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err))

	// Another user can neither see nor revoke it.
	admin := s.Clients(ts.Connect, s.AdminToken)
	_, err = admin.Auth.RevokeToken(ctx, &agnesv1.RevokeTokenRequest{TokenId: created.GetId()})
	require.Equal(t, connect.CodeNotFound, connect.CodeOf(err))

	// Revoked: 401 everywhere, at once.
	res := s.REST(t, http.MethodDelete, "/auth/tokens/"+created.GetId(), s.UserToken, nil)
	require.Equal(t, http.StatusNoContent, res.Status)
	require.Empty(t, res.Body)
	for _, p := range allProtocols {
		require.Equal(t, "unauthenticated", getMeCode(t, s, p, created.GetToken()))
	}

	// Bad input.
	for _, req := range []*agnesv1.CreateTokenRequest{
		{Name: "  "},
		{Name: "x", ExpiresInDays: ptr(int32(0))},
		{Name: "x", ExpiresInDays: ptr(int32(3651))},
		{Name: "x", TtlSeconds: ptr(int64(-1))},
		{Name: "x", NoExpiry: true, ExpiresInDays: ptr(int32(1))},
	} {
		_, err := user.Auth.CreateToken(ctx, req)
		require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", req)
	}
	// Tokens must expire unless the server allows otherwise (TestTokenLifetimeIsBounded).
	_, err = user.Auth.CreateToken(ctx, &agnesv1.CreateTokenRequest{Name: "ci", NoExpiry: true})
	require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
}

func ptr[T any](v T) *T { return &v }

func TestLogoutRevokesTheSessionServerSide(t *testing.T) {
	s := ts.New(t)
	tok := s.Session(t, s.UserID, "user@example.com")
	res := s.REST(t, http.MethodPost, "/auth/logout", tok, "{}")
	require.Equal(t, http.StatusOK, res.Status)
	cookie := res.Header.Get("Set-Cookie")
	require.Contains(t, cookie, "access_token=;")
	require.Contains(t, cookie, "Max-Age=0")
	for _, p := range allProtocols {
		require.Equal(t, "unauthenticated", getMeCode(t, s, p, tok), "the old token is refused over %s", p)
	}
	require.Equal(t, "ok", getMeCode(t, s, ts.Connect, s.Session(t, s.UserID, "user@example.com")), "a new session works")
}

func TestPasswordLoginSetsASessionCookie(t *testing.T) {
	s := ts.New(t)
	res := s.REST(t, http.MethodPost, "/auth/password/login", "", map[string]string{"email": "USER@example.com", "password": "password123"})
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	var body struct{ AccessToken, Role string }
	res.JSON(t, &body)
	require.Equal(t, "user", body.Role)
	cookies := (&http.Response{Header: res.Header}).Cookies()
	require.Len(t, cookies, 1)
	c := cookies[0]
	require.Equal(t, "access_token", c.Name)
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteLaxMode, c.SameSite)

	// The cookie alone authenticates, through REST and Connect.
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/auth/me", nil)
	req.AddCookie(c)
	r, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, http.StatusOK, r.StatusCode)

	// Wrong password, unknown user: the same 401.
	for _, creds := range []map[string]string{
		{"email": "user@example.com", "password": "wrong-password"},
		{"email": "nobody@example.com", "password": "password123"},
	} {
		res := s.REST(t, http.MethodPost, "/auth/token", "", creds)
		require.Equal(t, http.StatusUnauthorized, res.Status)
		detail, code := res.Error(t)
		require.Equal(t, "invalid email or password", detail)
		require.Equal(t, "unauthenticated", code)
	}
}

func TestBootstrapIsRefusedOnceAPasswordExists(t *testing.T) {
	s := ts.New(t)
	res := s.REST(t, http.MethodPost, "/auth/bootstrap", "", map[string]string{"email": "evil@example.com", "password": "password123"})
	require.Equal(t, http.StatusForbidden, res.Status)
}

func TestSignInIsRateLimitedPerIP(t *testing.T) {
	s := ts.New(t, ts.WithRateLimit())
	var last *ts.RESTResponse
	for range 11 {
		last = s.REST(t, http.MethodPost, "/auth/token", "", map[string]string{"email": "user@example.com", "password": "nope-nope"})
	}
	require.Equal(t, http.StatusTooManyRequests, last.Status)
	require.NotEmpty(t, last.Header.Get("Retry-After"))
	_, code := last.Error(t)
	require.Equal(t, "resource_exhausted", code)

	// The same limit holds over Connect (one bucket per IP and RPC, whatever the protocol).
	_, err := s.Clients(ts.Connect, "").Auth.CreateSessionToken(context.Background(),
		&agnesv1.CreateSessionTokenRequest{Email: "user@example.com", Password: "password123"})
	require.Equal(t, connect.CodeResourceExhausted, connect.CodeOf(err))
}

func TestAdminnessIsDecidedAtRequestTime(t *testing.T) {
	s := ts.New(t)
	ctx := context.Background()
	admin := s.Clients(ts.Connect, s.AdminToken)
	groups, err := admin.Admin.ListGroups(ctx, &agnesv1.ListGroupsRequest{})
	require.NoError(t, err)
	var adminGroup string
	for _, g := range groups.GetGroups() {
		if g.GetName() == "Admin" {
			adminGroup = g.GetId()
		}
	}
	userTok := s.Session(t, s.UserID, "user@example.com")
	user := s.Clients(ts.GRPC, userTok)
	_, err = user.Admin.ListUsers(ctx, &agnesv1.ListUsersRequest{})
	require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err))

	_, err = admin.Admin.AddGroupMember(ctx, &agnesv1.AddGroupMemberRequest{GroupId: adminGroup, UserId: s.UserID})
	require.NoError(t, err)
	_, err = user.Admin.ListUsers(ctx, &agnesv1.ListUsersRequest{})
	require.NoError(t, err, "the same token is admin now")

	_, err = admin.Admin.RemoveGroupMember(ctx, &agnesv1.RemoveGroupMemberRequest{GroupId: adminGroup, UserId: s.UserID})
	require.NoError(t, err)
	_, err = user.Admin.ListUsers(ctx, &agnesv1.ListUsersRequest{})
	require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err), "and no longer")

	// Deactivation stops every token at once.
	_, err = admin.Admin.DeactivateUser(ctx, &agnesv1.DeactivateUserRequest{UserId: s.UserID})
	require.NoError(t, err)
	for _, p := range allProtocols {
		require.Equal(t, "unauthenticated", getMeCode(t, s, p, userTok))
	}
}
