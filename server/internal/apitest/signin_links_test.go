package apitest

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/config"
	"github.com/agnesdata/agnes/server/internal/mail/mailtest"
	"github.com/agnesdata/agnes/server/internal/store"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// mailServer is an Agnes server that mails through a real SMTP server on
// loopback (plain SMTP with AUTH, as a local relay).
func mailServer(t *testing.T, opts ...ts.Option) (*ts.Server, *mailtest.Server) {
	smtp := mailtest.Start(t, mailtest.WithAuth("agnes", "smtp-secret"))
	opts = append([]ts.Option{ts.WithConfig(func(c *config.Config) {
		c.SMTP = config.SMTP{Host: smtp.Host, Port: smtp.Port, User: "agnes", From: "Agnes <agnes@example.com>", TLS: "none"}
		c.SMTP.Password = secret("smtp-secret")
	})}, opts...)
	return ts.New(t, opts...), smtp
}

// tokenOf reads the email and token of a mailed link.
func tokenOf(t *testing.T, link string) (email, token string) {
	t.Helper()
	u, err := url.Parse(link)
	require.NoError(t, err)
	return u.Query().Get("email"), u.Query().Get("token")
}

const badLink = "invalid or expired link"

func TestSignInMagicLink(t *testing.T) {
	s, smtp := mailServer(t)
	ctx := context.Background()

	// The answer is the same for a registered and an unknown email; only the
	// registered one gets mail.
	known := s.REST(t, http.MethodPost, "/auth/email/send-link", "", map[string]string{"email": "User@Example.com"})
	unknown := s.REST(t, http.MethodPost, "/auth/email/send-link", "", map[string]string{"email": "nobody@example.com"})
	require.Equal(t, http.StatusOK, known.Status, "%s", known.Body)
	require.Equal(t, known.Status, unknown.Status)
	require.Equal(t, string(known.Body), string(unknown.Body))
	m := smtp.Next(t)
	require.Equal(t, "user@example.com", m.To)
	require.Equal(t, "agnes@example.com", m.From)
	link := m.Link(t, "/auth/email/verify?")
	require.True(t, strings.HasPrefix(link, s.URL+"/auth/email/verify?"), link)
	require.Contains(t, m.HTML, "Sign in")
	smtp.None(t)

	// The stored token is a hash, not the token.
	email, token := tokenOf(t, link)
	require.Equal(t, "user@example.com", email)
	_, err := s.App.Store.ConsumeOneTimeToken(ctx, auth.PurposeMagicLink, token, time.Now())
	require.ErrorIs(t, err, store.ErrNotFound, "the raw token is not a key")

	// A browser follows the link: the cookie, then /.
	c := browser(t, "")
	res, _ := get(t, c, link)
	require.Equal(t, "/", res.Request.URL.Path)
	cookie := sessionCookie(t, c, s.URL)
	require.NotNil(t, cookie)
	res, body := get(t, c, s.URL+"/auth/me")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, body, "user@example.com")

	// Used: the GET answers /login?error=invalid_link, the JSON verify 401.
	res, _ = get(t, browser(t, ""), link)
	require.Equal(t, "invalid_link", res.Request.URL.Query().Get("error"))
	r := s.REST(t, http.MethodPost, "/auth/email/verify", "", map[string]string{"email": email, "token": token})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	detail, _ := r.Error(t)
	require.Equal(t, badLink, detail)

	// Verify over JSON, and the new link replaces the old.
	require.Equal(t, http.StatusOK, s.REST(t, http.MethodPost, "/auth/email/send-link", "", map[string]string{"email": "user@example.com"}).Status)
	_, first := tokenOf(t, smtp.Next(t).Link(t, "verify"))
	require.Equal(t, http.StatusOK, s.REST(t, http.MethodPost, "/auth/email/send-link", "", map[string]string{"email": "user@example.com"}).Status)
	_, second := tokenOf(t, smtp.Next(t).Link(t, "verify"))
	r = s.REST(t, http.MethodPost, "/auth/email/verify", "", map[string]string{"email": email, "token": first})
	require.Equal(t, http.StatusUnauthorized, r.Status, "replaced")
	r = s.REST(t, http.MethodPost, "/auth/email/verify", "", map[string]string{"email": email, "token": second})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var sess struct {
		AccessToken string `json:"access_token"`
		Role        string
	}
	r.JSON(t, &sess)
	require.Equal(t, "ok", getMeCode(t, s, ts.Connect, sess.AccessToken))

	// Expired, unknown and wrong-email tokens: the same 401.
	expiredTok, expiredHash := auth.NewOneTimeToken()
	require.NoError(t, s.App.Store.IssueOneTimeToken(ctx, &store.OneTimeToken{Hash: expiredHash, Purpose: auth.PurposeMagicLink,
		UserID: s.UserID, ExpiresAt: time.Now().Add(-time.Minute)}))
	require.Equal(t, http.StatusOK, s.REST(t, http.MethodPost, "/auth/email/send-link", "", map[string]string{"email": "user@example.com"}).Status)
	_, fresh := tokenOf(t, smtp.Next(t).Link(t, "verify"))
	for name, body := range map[string]map[string]string{
		"expired":     {"email": email, "token": expiredTok},
		"unknown":     {"email": email, "token": "not-a-token"},
		"empty":       {"email": email, "token": ""},
		"wrong email": {"email": "admin@example.com", "token": fresh},
	} {
		r := s.REST(t, http.MethodPost, "/auth/email/verify", "", body)
		require.Equal(t, http.StatusUnauthorized, r.Status, name)
		detail, _ := r.Error(t)
		require.Equal(t, badLink, detail, name)
	}
	res, body = get(t, browser(t, "application/json"), s.URL+"/auth/email/verify?email=user%40example.com&token=nope")
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	require.Contains(t, body, badLink)

	// A deactivated account gets no mail (same answer) and its links stop working.
	require.Equal(t, http.StatusOK, s.REST(t, http.MethodPost, "/auth/email/send-link", "", map[string]string{"email": "user@example.com"}).Status)
	_, pending := tokenOf(t, smtp.Next(t).Link(t, "verify"))
	admin := s.Clients(ts.Connect, s.AdminToken)
	_, err = admin.Admin.DeactivateUser(ctx, &agnesv1.DeactivateUserRequest{UserId: s.UserID})
	require.NoError(t, err)
	r = s.REST(t, http.MethodPost, "/auth/email/send-link", "", map[string]string{"email": "user@example.com"})
	require.Equal(t, string(known.Body), string(r.Body))
	smtp.None(t)
	r = s.REST(t, http.MethodPost, "/auth/email/verify", "", map[string]string{"email": "user@example.com", "token": pending})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	detail, _ = r.Error(t)
	require.Equal(t, "account deactivated", detail)

	// Bad input.
	r = s.REST(t, http.MethodPost, "/auth/email/send-link", "", map[string]string{"email": "not-an-email"})
	require.Equal(t, http.StatusBadRequest, r.Status)
}

func TestSignInPasswordResetSelfService(t *testing.T) {
	s, smtp := mailServer(t)

	// A magic link and a reset link live side by side: using one keeps the other.
	require.Equal(t, http.StatusOK, s.REST(t, http.MethodPost, "/auth/password/reset", "", map[string]string{"email": "user@example.com"}).Status)
	resetMail := smtp.Next(t)
	require.Equal(t, "Reset your Agnes password", resetMail.Subject)
	require.Equal(t, http.StatusOK, s.REST(t, http.MethodPost, "/auth/email/send-link", "", map[string]string{"email": "user@example.com"}).Status)
	magic := smtp.Next(t).Link(t, "/auth/email/verify?")
	res, _ := get(t, browser(t, ""), magic)
	require.Equal(t, "/", res.Request.URL.Path)
	unknown := s.REST(t, http.MethodPost, "/auth/password/reset", "", map[string]string{"email": "nobody@example.com"})
	require.Equal(t, http.StatusOK, unknown.Status)
	smtp.None(t)

	// The link opens a form; a short or mismatched password keeps the link alive.
	link := resetMail.Link(t, "/login/reset?")
	c := browser(t, "")
	res, page := get(t, c, link)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, page, `name="password"`)
	require.Equal(t, "no-referrer", res.Header.Get("Referrer-Policy"))
	email, token := tokenOf(t, link)
	res = postForm(t, c, s.URL+"/login/reset", url.Values{"email": {email}, "token": {token}, "password": {"short"}, "confirm_password": {"short"}})
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	res = postForm(t, c, s.URL+"/login/reset", url.Values{"email": {email}, "token": {token}, "password": {"new-password-1"}, "confirm_password": {"other-password"}})
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	r := s.REST(t, http.MethodPost, "/auth/password/reset/confirm", "", map[string]string{"email": email, "token": token, "password": "short"})
	require.Equal(t, http.StatusBadRequest, r.Status)

	// The form sets the password, signs in and goes to /.
	res, err := c.PostForm(s.URL+"/login/reset", url.Values{"email": {email}, "token": {token},
		"password": {"new-password-1"}, "confirm_password": {"new-password-1"}})
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, "/", res.Request.URL.Path)
	require.NotNil(t, sessionCookie(t, c, s.URL))
	r = s.REST(t, http.MethodPost, "/auth/token", "", map[string]string{"email": "user@example.com", "password": "new-password-1"})
	require.Equal(t, http.StatusOK, r.Status, "the new password works")

	// Used: the form and the JSON confirm answer 401 with one message.
	res = postForm(t, c, s.URL+"/login/reset", url.Values{"email": {email}, "token": {token}, "password": {"another-pass"}, "confirm_password": {"another-pass"}})
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	r = s.REST(t, http.MethodPost, "/auth/password/reset/confirm", "", map[string]string{"email": email, "token": token, "password": "another-pass"})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	detail, _ := r.Error(t)
	require.Equal(t, badLink, detail)
	r = s.REST(t, http.MethodPost, "/auth/password/setup", "", map[string]string{"email": email, "token": token, "password": "another-pass"})
	require.Equal(t, http.StatusUnauthorized, r.Status, "a reset token is no setup token")

	// The page's forgot form mails the same link, through the page's redirect.
	res, err = browser(t, "").PostForm(s.URL+"/login/forgot", url.Values{"email": {"user@example.com"}})
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, "reset_sent", res.Request.URL.Query().Get("notice"))
	require.Contains(t, smtp.Next(t).Text, "/login/reset?")
}

func TestSignInInvitesAndAdminReset(t *testing.T) {
	s, smtp := mailServer(t)
	ctx := context.Background()
	admin := s.Clients(ts.Connect, s.AdminToken)
	created, err := admin.Admin.CreateUser(ctx, &agnesv1.CreateUserRequest{Email: "new@example.com", Name: "New"})
	require.NoError(t, err)
	id := created.GetUser().GetId()

	inv, err := admin.Auth.InviteUser(ctx, &agnesv1.InviteUserRequest{UserId: id})
	require.NoError(t, err)
	require.True(t, inv.GetEmailSent())
	m := smtp.Next(t)
	require.Equal(t, "new@example.com", m.To)
	require.Equal(t, "You are invited to Agnes", m.Subject)
	require.Contains(t, m.Text, "7 days")
	link := m.Link(t, "/login/setup?")
	require.Equal(t, inv.GetInviteUrl(), link)

	email, token := tokenOf(t, link)
	r := s.REST(t, http.MethodPost, "/auth/password/setup", "", map[string]string{"email": email, "token": token, "password": "first-password"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var out struct {
		AccessToken string `json:"access_token"`
		Message     string
	}
	r.JSON(t, &out)
	require.Equal(t, "Password set successfully", out.Message)
	require.Equal(t, "ok", getMeCode(t, s, ts.REST, out.AccessToken))
	r = s.REST(t, http.MethodPost, "/auth/password/setup", "", map[string]string{"email": email, "token": token, "password": "first-password"})
	require.Equal(t, http.StatusUnauthorized, r.Status, "single use")

	// The admin's reset mails a 24 h link (over REST, as the Python API did).
	res := s.REST(t, http.MethodPost, "/api/users/"+id+"/reset-password", s.AdminToken, "{}")
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)
	var reset struct {
		ResetURL  string `json:"reset_url"`
		EmailSent bool   `json:"email_sent"`
	}
	res.JSON(t, &reset)
	require.True(t, reset.EmailSent)
	m = smtp.Next(t)
	require.Contains(t, m.Text, "24 hours")
	require.Equal(t, reset.ResetURL, m.Link(t, "/login/reset?"))
	email, token = tokenOf(t, reset.ResetURL)
	r = s.REST(t, http.MethodPost, "/auth/password/reset/confirm", "", map[string]string{"email": email, "token": token, "password": "second-password"})
	require.Equal(t, http.StatusOK, r.Status)

	// Unknown and deactivated users; users may not invite.
	_, err = admin.Auth.InviteUser(ctx, &agnesv1.InviteUserRequest{UserId: "missing"})
	require.Equal(t, "not_found", codeOf(err))
	_, err = admin.Admin.DeactivateUser(ctx, &agnesv1.DeactivateUserRequest{UserId: id})
	require.NoError(t, err)
	_, err = admin.Auth.ResetUserPassword(ctx, &agnesv1.ResetUserPasswordRequest{UserId: id})
	require.Equal(t, "failed_precondition", codeOf(err))
	_, err = s.Clients(ts.Connect, s.UserToken).Auth.InviteUser(ctx, &agnesv1.InviteUserRequest{UserId: id})
	require.Equal(t, "permission_denied", codeOf(err))
	smtp.None(t)
}

// Without SMTP on loopback, links go to the log (development); the answer is the same.
func TestSignInDevModeLogsLinks(t *testing.T) {
	var logs syncBuffer
	s := ts.New(t, ts.WithLog(&logs))
	r := s.REST(t, http.MethodPost, "/auth/email/send-link", "", map[string]string{"email": "user@example.com"})
	require.Equal(t, http.StatusOK, r.Status)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "/auth/email/verify?email=user%40example.com") },
		10*time.Second, 20*time.Millisecond, "the link is logged")
	res, err := s.Clients(ts.Connect, s.AdminToken).Auth.InviteUser(context.Background(), &agnesv1.InviteUserRequest{UserId: s.UserID})
	require.NoError(t, err)
	require.False(t, res.GetEmailSent(), "logged, not mailed")
	require.Contains(t, res.GetInviteUrl(), "/login/setup?")
}

func secret(v string) connectors.Secret { return connectors.NewSecret(v) }

func codeOf(err error) string {
	if err == nil {
		return "ok"
	}
	return connect.CodeOf(err).String()
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// POST /api/users with send_invite mails the setup link, as the Python API did.
func TestCreateUserWithInvite(t *testing.T) {
	s, smtp := mailServer(t)
	res := s.REST(t, http.MethodPost, "/api/users", s.AdminToken,
		map[string]any{"email": "invited@example.com", "name": "Invited", "send_invite": true})
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	var out struct {
		InviteURL       string `json:"invite_url"`
		InviteEmailSent bool   `json:"invite_email_sent"`
	}
	res.JSON(t, &out)
	require.True(t, out.InviteEmailSent, "%s", res.Body)
	m := smtp.Next(t)
	require.Equal(t, "invited@example.com", m.To)
	require.Equal(t, out.InviteURL, m.Link(t, "/login/setup?"))

	res = s.REST(t, http.MethodPost, "/api/users", s.AdminToken, map[string]any{"email": "quiet@example.com"})
	require.Equal(t, http.StatusCreated, res.Status)
	smtp.None(t)
}
