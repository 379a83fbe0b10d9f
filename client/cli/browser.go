package cli

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/agnesdata/agnes/client/sdk"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
)

// OpenBrowser opens a URL in the user's browser. Tests and programs embedding the
// CLI replace it.
var OpenBrowser = func(u string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	return cmd.Start()
}

// browserWait bounds how long the CLI waits for the browser.
const browserWait = 5 * time.Minute

// browserLogin signs in through the browser: it listens on a loopback port,
// opens <server>/auth/cli/login with that port, a state and a PKCE challenge,
// receives a one-time code on the redirect back, and exchanges it (with the
// verifier only this process knows) for a session token.
func (a *app) browserLogin(ctx context.Context, server string) (string, error) {
	verifier, state := randomToken(32), randomToken(24)
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listen on loopback: %w", err)
	}
	codes := make(chan string, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/callback" || q.Get("state") != state || q.Get("code") == "" {
			http.Error(w, "This is not the sign-in this agnes CLI started.", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>Agnes CLI</title><p>The Agnes CLI is signed in. You can close this window.</p>")
		select {
		case codes <- q.Get("code"):
		default:
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	u := strings.TrimRight(server, "/") + "/auth/cli/login?" +
		url.Values{"port": {port}, "state": {state}, "code_challenge": {challenge}}.Encode()
	fmt.Fprintf(a.err, "Opening your browser to sign in. If it does not open, visit:\n  %s\n", u)
	if err := OpenBrowser(u); err != nil {
		fmt.Fprintf(a.err, "(could not open a browser: %v)\n", err)
	}
	var code string
	select {
	case code = <-codes:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(browserWait):
		return "", errors.New("no sign-in arrived from the browser within 5 minutes")
	}
	res, err := sdk.New(server, "").Auth.ExchangeCLICode(ctx, &agnesv1.ExchangeCLICodeRequest{Code: code, CodeVerifier: verifier})
	if err != nil {
		return "", err
	}
	return res.GetAccessToken(), nil
}

// emailLinkLogin asks the server to mail a sign-in link and takes it back from
// the user: the whole link, or just its token.
func (a *app) emailLinkLogin(ctx context.Context, server, email string) (string, error) {
	var err error
	if email == "" {
		if email, err = a.prompt("Email: "); err != nil {
			return "", err
		}
	}
	anon := sdk.New(server, "")
	if _, err := anon.Auth.SendMagicLink(ctx, &agnesv1.SendMagicLinkRequest{Email: email}); err != nil {
		return "", err
	}
	fmt.Fprintf(a.err, "If %s is registered, a sign-in link is on its way (valid 1 hour).\n", email)
	line, err := a.prompt("Paste the link from the mail: ")
	if err != nil {
		return "", err
	}
	token := line
	if u, err := url.Parse(line); err == nil && u.Query().Get("token") != "" {
		token = u.Query().Get("token")
		if e := u.Query().Get("email"); e != "" {
			email = e
		}
	}
	res, err := anon.Auth.VerifyMagicLink(ctx, &agnesv1.VerifyMagicLinkRequest{Email: email, Token: token})
	if err != nil {
		return "", err
	}
	return res.GetAccessToken(), nil
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
