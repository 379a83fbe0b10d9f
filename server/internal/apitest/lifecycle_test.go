package apitest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// nextSecond waits for the next whole second: JWTs carry whole seconds, and a
// session issued in the second of a password change stays valid.
func nextSecond() { time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second))) }

func createPAT(t *testing.T, s *ts.Server, session string) string {
	res := s.REST(t, http.MethodPost, "/auth/tokens", session, `{"name": "cli"}`)
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	var tok struct{ Token string }
	res.JSON(t, &tok)
	return tok.Token
}

func meStatus(t *testing.T, s *ts.Server, token string) (int, string) {
	res := s.REST(t, http.MethodGet, "/auth/me", token, nil)
	if res.Status == http.StatusOK {
		return res.Status, ""
	}
	detail, _ := res.Error(t)
	return res.Status, detail
}

// An admin's password reset ends the user's sessions and tokens at once.
func TestPasswordResetEndsSessionsAndTokens(t *testing.T) {
	s := ts.New(t)
	session := s.Session(t, s.UserID, "user@example.com")
	pat := createPAT(t, s, session)
	nextSecond()
	res := s.REST(t, http.MethodPost, "/api/users/"+s.UserID+"/set-password", s.AdminToken, `{"password": "a-new-password"}`)
	require.Equal(t, http.StatusNoContent, res.Status, "%s", res.Body)
	status, detail := meStatus(t, s, session)
	require.Equal(t, http.StatusUnauthorized, status)
	require.Contains(t, detail, "session ended")
	status, detail = meStatus(t, s, pat)
	require.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, "token revoked", detail)

	// Signing in with the new password works at once.
	res = s.REST(t, http.MethodPost, "/auth/token", "", `{"email": "user@example.com", "password": "a-new-password"}`)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	res.JSON(t, &tok)
	status, _ = meStatus(t, s, tok.AccessToken)
	require.Equal(t, http.StatusOK, status)
}

// Deactivation ends sessions and tokens; reactivation does not revive them.
func TestReactivationRevivesNothing(t *testing.T) {
	s := ts.New(t)
	session := s.Session(t, s.UserID, "user@example.com")
	pat := createPAT(t, s, session)
	nextSecond()
	for _, action := range []string{"deactivate", "activate"} {
		res := s.REST(t, http.MethodPost, "/api/users/"+s.UserID+"/"+action, s.AdminToken, `{}`)
		require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	}
	status, _ := meStatus(t, s, session)
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = meStatus(t, s, pat)
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = meStatus(t, s, s.Session(t, s.UserID, "user@example.com"))
	require.Equal(t, http.StatusOK, status, "a session issued after reactivation works")
}

// Logging out with a personal access token revokes that token.
func TestLogoutWithATokenRevokesIt(t *testing.T) {
	s := ts.New(t)
	pat := createPAT(t, s, s.UserToken)
	res := s.REST(t, http.MethodPost, "/auth/logout", pat, `{}`)
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	status, detail := meStatus(t, s, pat)
	require.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, "token revoked", detail)
	status, _ = meStatus(t, s, s.UserToken)
	require.Equal(t, http.StatusOK, status, "the user's session is untouched")
}

// Tokens must expire within the configured maximum, unless an admin allows otherwise.
func TestTokenLifetimeIsBounded(t *testing.T) {
	s := ts.New(t, ts.WithConfig(func(c *configT) { c.Tokens.MaxDays = 30 }))
	for body, want := range map[string]string{
		`{"name": "x", "no_expiry": true}`:      "tokens must expire",
		`{"name": "x", "expires_in_days": 31}`:  "between 1 and 30",
		`{"name": "x", "ttl_seconds": 2600000}`: "tokens.max_days is 30",
	} {
		res := s.REST(t, http.MethodPost, "/auth/tokens", s.UserToken, body)
		require.Equal(t, http.StatusBadRequest, res.Status, body)
		detail, _ := res.Error(t)
		require.Contains(t, detail, want)
	}
	res := s.REST(t, http.MethodPost, "/auth/tokens", s.UserToken, `{"name": "x"}`)
	require.Equal(t, http.StatusCreated, res.Status, "the default lifetime fits the bound")
	var tok struct {
		ExpiresAt time.Time `json:"expires_at"`
	}
	res.JSON(t, &tok)
	require.WithinDuration(t, time.Now().AddDate(0, 0, 30), tok.ExpiresAt, time.Hour)

	open := ts.New(t, ts.WithConfig(func(c *configT) { c.Tokens.AllowNonExpiring = true }))
	res = open.REST(t, http.MethodPost, "/auth/tokens", open.UserToken, `{"name": "x", "no_expiry": true}`)
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
}

// Failed sign-ins for one account from many addresses are throttled per
// account; behind a trusted proxy the client is the rightmost untrusted hop.
func TestSignInThrottlePerAccount(t *testing.T) {
	s := ts.New(t, ts.WithRateLimit(), ts.WithConfig(func(c *configT) { c.TrustedProxies = []string{"127.0.0.1"} }))
	try := func(ip, password string) *http.Response {
		req, err := http.NewRequest(http.MethodPost, s.URL+"/auth/token",
			strings.NewReader(fmt.Sprintf(`{"email": "user@example.com", "password": %q}`, password)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		// A client-written first hop, then the client's address as the proxy saw it.
		req.Header.Set("X-Forwarded-For", "6.6.6.6, "+ip)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = res.Body.Close()
		return res
	}
	var throttled *http.Response
	for i := range 30 {
		res := try(fmt.Sprintf("198.51.100.%d", i+1), "wrong-password")
		if res.StatusCode == http.StatusTooManyRequests {
			throttled = res
			break
		}
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	}
	require.NotNil(t, throttled, "failures from 30 addresses for one account end in 429")
	require.NotEmpty(t, throttled.Header.Get("Retry-After"))
	require.Equal(t, http.StatusTooManyRequests, try("198.51.100.200", "password123").StatusCode,
		"even the right password waits: the account is throttled, not the address")

	// Another account is unaffected.
	_, err := s.Clients(ts.Connect, s.AdminToken).Auth.GetMe(context.Background(), &agnesv1.GetMeRequest{})
	require.NoError(t, err)
}
