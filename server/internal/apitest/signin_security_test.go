package apitest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/config"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// do sends one request with a body, headers and an optional session cookie.
func do(t *testing.T, method, u, body string, header map[string]string, cookie *http.Cookie) int {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func TestSignInCookieRequestsNeedCSRFProof(t *testing.T) {
	s := ts.New(t)
	cookie := &http.Cookie{Name: "access_token", Value: s.Session(t, s.UserID, "user@example.com")}
	crossSite := map[string]string{"Sec-Fetch-Site": "cross-site"}
	foreignOrigin := map[string]string{"Origin": "https://evil.example"}
	sameOrigin := map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": s.URL}

	// A state-changing request riding the cookie from another site: 403, over the
	// REST mirror, Connect and the plain routes.
	for _, h := range []map[string]string{crossSite, foreignOrigin} {
		require.Equal(t, http.StatusForbidden, do(t, http.MethodPost, s.URL+"/auth/tokens", `{"name":"x"}`, h, cookie))
		require.Equal(t, http.StatusForbidden, do(t, http.MethodPost, s.URL+"/agnes.v1.AuthService/CreateToken", `{"name":"x"}`, h, cookie))
		require.Equal(t, http.StatusForbidden, do(t, http.MethodPost, s.URL+"/auth/logout", `{}`, h, cookie))
	}
	// A cross-site sign-in form (login CSRF) is refused too, cookie or not.
	require.Equal(t, http.StatusForbidden, do(t, http.MethodPost, s.URL+"/login", "email=user%40example.com&password=password123",
		map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "application/x-www-form-urlencoded"}, nil))

	// The same request from this site works; reads work from anywhere.
	require.Equal(t, http.StatusCreated, do(t, http.MethodPost, s.URL+"/auth/tokens", `{"name":"x"}`, sameOrigin, cookie))
	require.Equal(t, http.StatusOK, do(t, http.MethodGet, s.URL+"/auth/me", "", crossSite, cookie))

	// Bearer requests are not affected: a browser never adds the header on its own.
	bearer := map[string]string{"Sec-Fetch-Site": "cross-site", "Authorization": "Bearer " + s.UserToken}
	require.Equal(t, http.StatusCreated, do(t, http.MethodPost, s.URL+"/auth/tokens", `{"name":"y"}`, bearer, nil))

	// Non-browser clients (no Sec-Fetch-Site, no Origin) are not browsers: allowed.
	require.Equal(t, http.StatusCreated, do(t, http.MethodPost, s.URL+"/auth/tokens", `{"name":"z"}`, nil, cookie))
}

func TestSignInReadOnlyTokens(t *testing.T) {
	s := ts.New(t)
	ctx := context.Background()
	admin := s.Clients(ts.Connect, s.AdminToken)
	ro, err := admin.Auth.CreateToken(ctx, &agnesv1.CreateTokenRequest{Name: "agent", Scope: "read-only"})
	require.NoError(t, err)
	require.Equal(t, "read-only", ro.GetScope())
	_, err = admin.Auth.CreateToken(ctx, &agnesv1.CreateTokenRequest{Name: "bad", Scope: "everything"})
	require.Equal(t, "invalid_argument", codeOf(err))

	for _, p := range []ts.Protocol{ts.Connect, ts.GRPC} {
		c := s.Clients(p, ro.GetToken())
		me, err := c.Auth.GetMe(ctx, &agnesv1.GetMeRequest{})
		require.NoError(t, err, "reads work over %s", p)
		require.Equal(t, "read-only", me.GetScope())
		_, err = c.Admin.ListUsers(ctx, &agnesv1.ListUsersRequest{})
		require.NoError(t, err, "an admin's read-only token reads admin data")
		_, err = c.Admin.CreateGroup(ctx, &agnesv1.CreateGroupRequest{Name: "g-" + string(p)})
		require.Equal(t, "permission_denied", codeOf(err), "writes are refused over %s", p)
		_, err = c.Auth.RevokeToken(ctx, &agnesv1.RevokeTokenRequest{TokenId: ro.GetId()})
		require.Equal(t, "permission_denied", codeOf(err))
	}
	require.Equal(t, http.StatusOK, s.REST(t, http.MethodGet, "/api/users", ro.GetToken(), nil).Status)
	res := s.REST(t, http.MethodPost, "/api/admin/groups", ro.GetToken(), map[string]string{"name": "rest"})
	require.Equal(t, http.StatusForbidden, res.Status)
	detail, _ := res.Error(t)
	require.Contains(t, detail, "read-only")

	list, err := admin.Auth.ListTokens(ctx, &agnesv1.ListTokensRequest{})
	require.NoError(t, err)
	require.Equal(t, "read-only", list.GetTokens()[0].GetScope())
}

const schedulerToken = "scheduler-secret-scheduler-secret-0123456789"

func TestSignInSchedulerToken(t *testing.T) {
	s := ts.New(t, ts.WithConfig(func(c *config.Config) { c.SchedulerToken = secret(schedulerToken) }))
	ctx := context.Background()
	c := s.Clients(ts.Connect, schedulerToken)

	job, err := c.Sync.TriggerSync(ctx, &agnesv1.TriggerSyncRequest{})
	require.NoError(t, err, "the scheduler triggers syncs")
	_, err = c.Sync.GetSyncJob(ctx, &agnesv1.GetSyncJobRequest{JobId: job.GetJobId()})
	require.NoError(t, err)
	_, err = c.Sync.ListSyncJobs(ctx, &agnesv1.ListSyncJobsRequest{})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, s.REST(t, http.MethodGet, "/api/health", schedulerToken, nil).Status)

	// Nothing else, although it acts as an admin.
	_, err = c.Admin.ListUsers(ctx, &agnesv1.ListUsersRequest{})
	require.Equal(t, "permission_denied", codeOf(err))
	_, err = c.Auth.GetMe(ctx, &agnesv1.GetMeRequest{})
	require.Equal(t, "permission_denied", codeOf(err))
	_, err = c.Auth.CreateToken(ctx, &agnesv1.CreateTokenRequest{Name: "x"})
	require.Equal(t, "permission_denied", codeOf(err))
	require.Equal(t, http.StatusForbidden, s.REST(t, http.MethodGet, "/api/users", schedulerToken, nil).Status)

	// A near miss is just a bad token.
	_, err = s.Clients(ts.Connect, schedulerToken[:len(schedulerToken)-1]+"x").Sync.ListSyncJobs(ctx, &agnesv1.ListSyncJobsRequest{})
	require.Equal(t, "unauthenticated", codeOf(err))
}

// TestSignInEndpointsAreRateLimited: every sign-in endpoint, RPC or route, has a
// per-IP limit, and going over it answers 429.
func TestSignInEndpointsAreRateLimited(t *testing.T) {
	s := ts.New(t, ts.WithRateLimit())
	for _, rt := range s.App.Routes() {
		if strings.HasPrefix(rt.Name, "signin.") {
			require.Positive(t, rt.Policy.GetRatePerMinute(), "%s has no rate limit", rt.Pattern)
		}
	}
	cookie := &http.Cookie{Name: "access_token", Value: s.UserToken}
	cases := []struct {
		method, path string
		limit        int
		cookie       *http.Cookie
	}{
		{http.MethodPost, "/auth/email/send-link", 5, nil},
		{http.MethodPost, "/auth/email/verify", 10, nil},
		{http.MethodPost, "/auth/password/reset", 5, nil},
		{http.MethodPost, "/auth/password/reset/confirm", 10, nil},
		{http.MethodPost, "/auth/password/setup", 10, nil},
		{http.MethodPost, "/auth/cli/token", 10, nil},
		{http.MethodGet, "/auth/email/verify?email=a%40b.c&token=x", 10, nil},
		{http.MethodGet, "/auth/google/login", 10, nil},
		{http.MethodGet, "/auth/google/callback", 10, nil},
		{http.MethodGet, "/auth/cli/login", 10, nil},
		{http.MethodPost, "/auth/cli/login", 10, cookie},
		{http.MethodPost, "/login", 10, nil},
		{http.MethodPost, "/login/link", 5, nil},
		{http.MethodPost, "/login/forgot", 5, nil},
		{http.MethodPost, "/login/reset", 10, nil},
		{http.MethodPost, "/login/setup", 10, nil},
	}
	for _, tc := range cases {
		for i := range tc.limit {
			require.NotEqual(t, http.StatusTooManyRequests, do(t, tc.method, s.URL+tc.path, "{}", nil, tc.cookie),
				"%s %s call %d", tc.method, tc.path, i+1)
		}
		require.Equal(t, http.StatusTooManyRequests, do(t, tc.method, s.URL+tc.path, "{}", nil, tc.cookie), "%s %s", tc.method, tc.path)
	}
}
