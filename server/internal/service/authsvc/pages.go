package authsvc

import (
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/route"
	"github.com/agnesdata/agnes/server/internal/store"
)

//go:embed templates/*.html
var templateFiles embed.FS

var pages = template.Must(template.ParseFS(templateFiles, "templates/*.html"))

// Routes are the sign-in routes: the /login page and its forms, the magic
// link's GET form, Google (OIDC) sign-in and the CLI's browser sign-in. Every
// one is rate limited per client IP, like the sign-in RPCs.
func (s *Service) Routes() []route.Route {
	public := func(perMinute int32) *agnesv1.Policy {
		return &agnesv1.Policy{Access: agnesv1.Access_ACCESS_PUBLIC, RatePerMinute: perMinute}
	}
	return []route.Route{
		{Pattern: "GET /login", Name: "signin.page", Policy: public(60), Handler: s.loginPage},
		{Pattern: "POST /login", Name: "signin.password", Policy: public(10), Handler: s.passwordForm},
		{Pattern: "POST /login/link", Name: "signin.magic_link", Policy: public(5), Handler: s.magicLinkForm},
		{Pattern: "POST /login/forgot", Name: "signin.forgot", Policy: public(5), Handler: s.forgotForm},
		{Pattern: "GET /login/reset", Name: "signin.reset_page", Policy: public(60), Handler: s.passwordPage(resetLink)},
		{Pattern: "POST /login/reset", Name: "signin.reset", Policy: public(10), Handler: s.passwordSubmit(resetLink)},
		{Pattern: "GET /login/setup", Name: "signin.setup_page", Policy: public(60), Handler: s.passwordPage(setupLink)},
		{Pattern: "POST /login/setup", Name: "signin.setup", Policy: public(10), Handler: s.passwordSubmit(setupLink)},
		{Pattern: "GET /auth/email/verify", Name: "signin.magic_link_verify", Policy: public(10), Handler: s.magicLinkGet},
		{Pattern: "GET /auth/google/login", Name: "signin.google_login", Policy: public(10), Handler: s.googleLogin},
		{Pattern: "GET /auth/google/callback", Name: "signin.google_callback", Policy: public(10), Handler: s.googleCallback},
		{Pattern: "GET /auth/cli/login", Name: "signin.cli_page", Policy: public(10), Handler: s.cliPage},
		{Pattern: "POST /auth/cli/login", Name: "signin.cli_authorize", Handler: s.cliAuthorize,
			Policy: &agnesv1.Policy{Access: agnesv1.Access_ACCESS_AUTHENTICATED, SessionOnly: true, RatePerMinute: 10}},
	}
}

// page is what a sign-in page shows.
type page struct {
	Title         string
	Error, Notice string
	Form          string // login | password | cli
	Next          string
	Google        bool
	Action        string // the password form's target
	Email, Token  string
	CLI           cliParams
}

// Messages of the error and notice codes pages are redirected with.
var (
	errorMessages = map[string]string{
		"invalid_credentials": "Invalid email or password.",
		errDeactivatedCode:    "This account is deactivated.",
		errNoEmail:            "Your identity provider did not confirm an email address.",
		errDomainNotAllowed:   "Accounts of this domain may not sign in here.",
		errNotInGroup:         "Your account is in none of the groups allowed to sign in.",
		errOAuthFailed:        "Sign-in with your identity provider failed. Please try again.",
		errNotConfigured:      "Sign-in with Google is not configured on this server.",
		"invalid_link":        "This link is invalid, used or expired. Ask for a new one.",
		"invalid_email":       "That is not a valid email address.",
		"mail_not_configured": "This server cannot send mail; ask an administrator.",
		"password_mismatch":   "The two passwords differ.",
		"password_too_short":  "The password must be at least 8 characters.",
	}
	noticeMessages = map[string]string{
		"link_sent":  "If this email is registered, a sign-in link is on its way.",
		"reset_sent": "If this email is registered, a link to reset the password is on its way.",
	}
)

// render writes a page with the headers every sign-in page carries: no caching,
// no framing (the CLI page must not be clickjacked), no referrer (reset links
// carry tokens).
func render(w http.ResponseWriter, status int, p page) error {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	return pages.ExecuteTemplate(w, "page", p)
}

// loginPage is GET /login?next=&error=&notice=.
func (s *Service) loginPage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	next, err := nextParam(q.Get("next"))
	if err != nil {
		next = "/" // the page only carries next on; the forms check it again
	}
	return render(w, http.StatusOK, page{Title: "Sign in", Form: "login", Next: next, Google: s.google != nil,
		Error: errorMessages[q.Get("error")], Notice: noticeMessages[q.Get("notice")]})
}

// toLogin sends the browser back to the page with an error or notice code.
func toLogin(w http.ResponseWriter, r *http.Request, key, code, next string) error {
	v := url.Values{key: {code}}
	if next != "" && next != "/" {
		v.Set("next", next)
	}
	http.Redirect(w, r, "/login?"+v.Encode(), http.StatusSeeOther)
	return nil
}

// form parses a sign-in form (small bodies only).
func form(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return apierr.InvalidArgument("unreadable form")
	}
	return nil
}

// passwordForm is POST /login (email, password, next): the cookie, then next.
func (s *Service) passwordForm(w http.ResponseWriter, r *http.Request) error {
	if err := form(w, r); err != nil {
		return err
	}
	next, err := nextParam(r.PostForm.Get("next"))
	if err != nil {
		return err
	}
	id, err := s.signIn(r.Context(), r.PostForm.Get("email"), r.PostForm.Get("password"))
	switch {
	case errors.Is(err, errBadCredentials):
		return toLogin(w, r, "error", "invalid_credentials", next)
	case connect.CodeOf(err) == connect.CodeUnauthenticated:
		return toLogin(w, r, "error", errDeactivatedCode, next)
	case err != nil:
		return err
	}
	return s.signedIn(w, r, id, next)
}

// signedIn sets the session cookie and goes on to next.
func (s *Service) signedIn(w http.ResponseWriter, r *http.Request, id *store.Identity, next string) error {
	tok, err := s.session(id)
	if err != nil {
		return err
	}
	http.SetCookie(w, auth.SessionCookie(tok, auth.SecureRequest(r, s.secureCookies)))
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

// magicLinkForm is POST /login/link (email, next).
func (s *Service) magicLinkForm(w http.ResponseWriter, r *http.Request) error {
	if err := form(w, r); err != nil {
		return err
	}
	next, err := nextParam(r.PostForm.Get("next"))
	if err != nil {
		return err
	}
	return s.selfServiceForm(w, r, magicLink, next, "link_sent")
}

// forgotForm is POST /login/forgot (email).
func (s *Service) forgotForm(w http.ResponseWriter, r *http.Request) error {
	if err := form(w, r); err != nil {
		return err
	}
	return s.selfServiceForm(w, r, resetLink, "/", "reset_sent")
}

func (s *Service) selfServiceForm(w http.ResponseWriter, r *http.Request, l link, next, notice string) error {
	err := s.sendSelfService(r.Context(), l, r.PostForm.Get("email"), next)
	switch {
	case errors.Is(err, errNoMailer):
		return toLogin(w, r, "error", "mail_not_configured", next)
	case connect.CodeOf(err) == connect.CodeInvalidArgument:
		return toLogin(w, r, "error", "invalid_email", next)
	case err != nil:
		return err
	}
	return toLogin(w, r, "notice", notice, next)
}

// magicLinkGet is GET /auth/email/verify?email=&token=: the link in the mail.
func (s *Service) magicLinkGet(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	id, next, err := s.redeem(r.Context(), auth.PurposeMagicLink, q.Get("email"), q.Get("token"))
	if err != nil {
		if prefersJSON(r) {
			return err
		}
		code := "invalid_link"
		if errors.Is(err, errDeactivated) {
			code = errDeactivatedCode
		}
		return toLogin(w, r, "error", code, "")
	}
	if next == "" {
		next = "/"
	}
	return s.signedIn(w, r, id, next)
}

// passwordPage is GET /login/reset and /login/setup?email=&token=: the form that
// sets the password. It looks nothing up, so it tells nothing about the email.
func (s *Service) passwordPage(l link) route.Handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		if q.Get("email") == "" || q.Get("token") == "" {
			return toLogin(w, r, "error", "invalid_link", "")
		}
		return render(w, http.StatusOK, passwordPageData(l, q.Get("email"), q.Get("token"), ""))
	}
}

func passwordPageData(l link, email, token, errCode string) page {
	title := "Choose a new password"
	if l.purpose == auth.PurposePasswordSetup {
		title = "Set your password"
	}
	return page{Title: title, Form: "password", Action: l.path, Email: email, Token: token, Error: errorMessages[errCode]}
}

// passwordSubmit is POST /login/reset and /login/setup (email, token, password,
// confirm_password): the password, the cookie, then /.
func (s *Service) passwordSubmit(l link) route.Handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := form(w, r); err != nil {
			return err
		}
		f := r.PostForm
		email, token, pw := f.Get("email"), f.Get("token"), f.Get("password")
		again := func(status int, code string) error {
			return render(w, status, passwordPageData(l, email, token, code))
		}
		if pw != f.Get("confirm_password") {
			return again(http.StatusBadRequest, "password_mismatch")
		}
		if len(pw) < auth.MinPasswordLength {
			return again(http.StatusBadRequest, "password_too_short")
		}
		id, _, err := s.setPassword(r.Context(), l.purpose, email, token, pw)
		switch {
		case errors.Is(err, errDeactivated):
			return toLogin(w, r, "error", errDeactivatedCode, "")
		case connect.CodeOf(err) == connect.CodeUnauthenticated:
			return again(http.StatusUnauthorized, "invalid_link")
		case connect.CodeOf(err) == connect.CodeInvalidArgument:
			return again(http.StatusBadRequest, "password_too_short")
		case err != nil:
			return err
		}
		return s.signedIn(w, r, id, "/")
	}
}

// nextParam accepts only a path on this server, so that no sign-in ends on
// another site (an open redirect would lend our domain to phishing).
func nextParam(raw string) (string, error) {
	if raw == "" {
		return "/", nil
	}
	bad := apierr.InvalidArgument("next must be a path on this server")
	if len(raw) > 2048 || !strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "//") || strings.ContainsAny(raw, "\\") {
		return "", bad
	}
	for _, c := range raw {
		if c < 0x20 || c == 0x7f {
			return "", bad
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return "", bad
	}
	return raw, nil
}

// cliParams start the CLI's browser sign-in.
type cliParams struct {
	Port, State, Challenge string
}

var (
	stateRE     = regexp.MustCompile(`^[A-Za-z0-9_-]{16,128}$`)
	challengeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
)

func parseCLIParams(v url.Values) (cliParams, error) {
	p := cliParams{Port: v.Get("port"), State: v.Get("state"), Challenge: v.Get("code_challenge")}
	if n, err := strconv.Atoi(p.Port); err != nil || n < 1024 || n > 65535 {
		return p, apierr.InvalidArgument("port must be the CLI's loopback port (1024..65535)")
	}
	if !stateRE.MatchString(p.State) {
		return p, apierr.InvalidArgument("state must be 16 to 128 URL-safe characters")
	}
	if !challengeRE.MatchString(p.Challenge) {
		return p, apierr.InvalidArgument("code_challenge must be an S256 PKCE challenge (43 URL-safe characters)")
	}
	return p, nil
}

func (p cliParams) query() string {
	return url.Values{"port": {p.Port}, "state": {p.State}, "code_challenge": {p.Challenge}}.Encode()
}

// cliPage is GET /auth/cli/login?port=&state=&code_challenge=: after sign-in
// (Google when configured, else the /login page), it asks the person to confirm.
func (s *Service) cliPage(w http.ResponseWriter, r *http.Request) error {
	p, err := parseCLIParams(r.URL.Query())
	if err != nil {
		return err
	}
	caller := auth.FromContext(r.Context())
	if caller == nil || caller.TokenType != auth.TypeSession {
		back := url.Values{"next": {"/auth/cli/login?" + p.query()}}.Encode()
		if s.google != nil {
			http.Redirect(w, r, "/auth/google/login?"+back, http.StatusSeeOther)
		} else {
			http.Redirect(w, r, "/login?"+back, http.StatusSeeOther)
		}
		return nil
	}
	return render(w, http.StatusOK, page{Title: "Sign in the Agnes CLI", Form: "cli", Email: caller.Email, CLI: p})
}

// cliAuthorize is POST /auth/cli/login: a one-time code for the CLI, bound to
// its PKCE challenge, handed to its loopback listener.
func (s *Service) cliAuthorize(w http.ResponseWriter, r *http.Request) error {
	if err := form(w, r); err != nil {
		return err
	}
	p, err := parseCLIParams(r.PostForm)
	if err != nil {
		return err
	}
	caller := auth.FromContext(r.Context())
	code, hash := auth.NewOneTimeToken()
	if err := s.store.IssueOneTimeToken(r.Context(), &store.OneTimeToken{Hash: hash, Purpose: auth.PurposeCLICode,
		UserID: caller.UserID, Data: p.Challenge, ExpiresAt: s.now().Add(cliCodeTTL)}); err != nil {
		return err
	}
	s.audit(r.Context(), caller.UserID, "auth.cli_code_issued", "success", nil)
	target := "http://127.0.0.1:" + p.Port + "/callback?" + url.Values{"code": {code}, "state": {p.State}}.Encode()
	http.Redirect(w, r, target, http.StatusSeeOther)
	return nil
}
