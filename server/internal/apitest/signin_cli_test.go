package apitest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/client/cli"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

func cliEnv(t *testing.T) {
	t.Setenv("AGNES_CONFIG_DIR", t.TempDir())
	t.Setenv("AGNES_SERVER", "")
	t.Setenv("AGNES_TOKEN", "")
}

// TestSignInCLIBrowser: `agnes login --browser` opens the server's CLI page; a
// person signed in there confirms, and the CLI receives a one-time code on its
// loopback port and exchanges it for a token.
func TestSignInCLIBrowser(t *testing.T) {
	s := ts.New(t)
	cliEnv(t)

	// The person's browser, signed in with the sign-in page's password form.
	b := browser(t, "")
	res, err := b.PostForm(s.URL+"/login", url.Values{"email": {"user@example.com"}, "password": {"password123"}, "next": {"/auth/me"}})
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, "/auth/me", res.Request.URL.Path)

	visited := make(chan string, 1)
	old := cli.OpenBrowser
	t.Cleanup(func() { cli.OpenBrowser = old })
	cli.OpenBrowser = func(u string) error {
		go func() {
			res, page := get(t, b, u)
			if res.StatusCode != http.StatusOK || !strings.Contains(page, "Sign in the CLI") {
				visited <- "no confirmation page: " + page
				return
			}
			q, _ := url.Parse(u)
			res, err := b.PostForm(s.URL+"/auth/cli/login", q.Query())
			if err != nil {
				visited <- err.Error()
				return
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			visited <- res.Request.URL.Host + " " + string(body)
		}()
		return nil
	}
	out, stderr, code := agnes(t, "", "login", "--server", s.URL, "--browser")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "as user@example.com")
	require.Contains(t, stderr, "/auth/cli/login?")
	landed := <-visited
	require.True(t, strings.HasPrefix(landed, "127.0.0.1:"), landed)
	require.Contains(t, landed, "signed in")

	out, _, code = agnes(t, "", "whoami", "--json")
	require.Equal(t, 0, code)
	var me struct {
		TokenType string `json:"token_type"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &me))
	require.Equal(t, "pat", me.TokenType)
}

func TestSignInCLICodes(t *testing.T) {
	s := ts.New(t)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := strings.Repeat("v", 43)
	challenge := s256(verifier)
	params := url.Values{"port": {"45678"}, "state": {"state-of-the-cli-0001"}, "code_challenge": {challenge}}

	// Not signed in: to the sign-in page, coming back here afterwards.
	res, err := noFollow.Get(s.URL + "/auth/cli/login?" + params.Encode())
	require.NoError(t, err)
	res.Body.Close()
	loc, _ := url.Parse(res.Header.Get("Location"))
	require.Equal(t, "/login", loc.Path)
	require.Equal(t, "/auth/cli/login?"+params.Encode(), loc.Query().Get("next"))

	// Bad parameters; a port that is not the CLI's loopback.
	for _, bad := range []url.Values{
		{"port": {"80"}, "state": params["state"], "code_challenge": {challenge}},
		{"port": {"45678"}, "state": {"short"}, "code_challenge": {challenge}},
		{"port": {"45678"}, "state": params["state"], "code_challenge": {"plain-verifier"}},
	} {
		res, err := noFollow.Get(s.URL + "/auth/cli/login?" + bad.Encode())
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusBadRequest, res.StatusCode, bad.Encode())
	}

	issue := func() string {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/auth/cli/login", strings.NewReader(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+s.UserToken)
		res, err := noFollow.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusSeeOther, res.StatusCode)
		loc, _ := url.Parse(res.Header.Get("Location"))
		require.Equal(t, "127.0.0.1:45678", loc.Host, "only to the loopback port")
		require.Equal(t, "state-of-the-cli-0001", loc.Query().Get("state"))
		return loc.Query().Get("code")
	}
	ctx := context.Background()
	anon := s.Clients(ts.Connect, "")
	code := issue()
	_, err = anon.Auth.ExchangeCLICode(ctx, &agnesv1.ExchangeCLICodeRequest{Code: code, CodeVerifier: "wrong-verifier"})
	require.Equal(t, "unauthenticated", codeOf(err), "a stolen code without the verifier is useless")
	_, err = anon.Auth.ExchangeCLICode(ctx, &agnesv1.ExchangeCLICodeRequest{Code: code, CodeVerifier: verifier})
	require.Equal(t, "unauthenticated", codeOf(err), "and it is used up")
	code = issue()
	got, err := anon.Auth.ExchangeCLICode(ctx, &agnesv1.ExchangeCLICodeRequest{Code: code, CodeVerifier: verifier})
	require.NoError(t, err)
	require.Equal(t, "user@example.com", got.GetEmail())
	_, err = anon.Auth.ExchangeCLICode(ctx, &agnesv1.ExchangeCLICodeRequest{Code: code, CodeVerifier: verifier})
	require.Equal(t, "unauthenticated", codeOf(err), "single use")

	// A personal access token cannot authorize a CLI: that needs an interactive session.
	pat, err := s.Clients(ts.Connect, s.UserToken).Auth.CreateToken(ctx, &agnesv1.CreateTokenRequest{Name: "p"})
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/auth/cli/login", strings.NewReader(params.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+pat.GetToken())
	res, err = noFollow.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusForbidden, res.StatusCode)
}

// TestSignInCLIEmailLink: `agnes login --email-link` asks for the link the
// server mailed and signs in with it.
func TestSignInCLIEmailLink(t *testing.T) {
	s, smtp := mailServer(t)
	cliEnv(t)
	stdin, typeIn := io.Pipe()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(context.Background(), "test", []string{"login", "--server", s.URL, "--email-link", "--email", "user@example.com"},
			stdin, &out, &errb)
	}()
	link := smtp.Next(t).Link(t, "/auth/email/verify?")
	_, err := io.WriteString(typeIn, link+"\n")
	require.NoError(t, err)
	require.Equal(t, 0, <-done, errb.String())
	require.Contains(t, out.String(), "as user@example.com")
	require.Contains(t, errb.String(), "sign-in link is on its way")
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
