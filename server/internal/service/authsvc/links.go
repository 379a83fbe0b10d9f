package authsvc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"net/url"
	"time"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/mail"
	"github.com/agnesdata/agnes/server/internal/service"
	"github.com/agnesdata/agnes/server/internal/store"
)

// Lifetimes of one-time tokens.
const (
	magicLinkTTL = time.Hour
	resetTTL     = 24 * time.Hour
	setupTTL     = 7 * 24 * time.Hour
	cliCodeTTL   = 2 * time.Minute
)

// The one answer for every link that does not work (unknown, used, expired,
// tampered), so that a caller learns nothing about which.
var errBadLink = apierr.Unauthenticated("invalid or expired link")

var errDeactivated = apierr.Unauthenticated("account deactivated")

const linkSentMessage = "If this email is registered, you will receive a link."

// link is one kind of mailed one-time link.
type link struct {
	purpose string
	ttl     time.Duration
	path    string // where the link points
	subject string
	intro   string // the mail's first sentence
	action  string // the link's words
}

var (
	magicLink = link{auth.PurposeMagicLink, magicLinkTTL, "/auth/email/verify", "Your sign-in link for Agnes",
		"Someone (hopefully you) asked to sign in to Agnes with this email address.", "Sign in"}
	resetLink = link{auth.PurposePasswordReset, resetTTL, "/login/reset", "Reset your Agnes password",
		"Someone (hopefully you or an administrator) asked to reset the Agnes password of this email address.", "Choose a new password"}
	setupLink = link{auth.PurposePasswordSetup, setupTTL, "/login/setup", "You are invited to Agnes",
		"You have been invited to Agnes, your company's data platform.", "Set your password"}
)

// issue stores a new token of the link's kind for the user (replacing the
// previous one) and returns the URL that redeems it. data travels with the
// token (a magic link's next path).
func (s *Service) issue(ctx context.Context, l link, userID, email, data string) (string, error) {
	tok, hash := auth.NewOneTimeToken()
	if err := s.store.IssueOneTimeToken(ctx, &store.OneTimeToken{Hash: hash, Purpose: l.purpose, UserID: userID,
		Data: data, ExpiresAt: s.now().Add(l.ttl)}); err != nil {
		return "", err
	}
	q := url.Values{"email": {email}, "token": {tok}}
	return s.baseURL() + l.path + "?" + q.Encode(), nil
}

// message is the mail that carries a link.
func (l link) message(to, u string) mail.Message {
	valid := "1 hour"
	switch l.ttl {
	case resetTTL:
		valid = "24 hours"
	case setupTTL:
		valid = "7 days"
	}
	text := fmt.Sprintf("%s\n\n%s:\n%s\n\nThe link works once and for %s. If you did not ask for it, ignore this mail.\n",
		l.intro, l.action, u, valid)
	htmlBody := fmt.Sprintf(`<p>%s</p><p><a href="%s">%s</a></p><p>The link works once and for %s. If you did not ask for it, ignore this mail.</p>`,
		html.EscapeString(l.intro), html.EscapeString(u), html.EscapeString(l.action), valid)
	return mail.Message{To: to, Subject: l.subject, Text: text, HTML: htmlBody}
}

// mailLater sends off the request path: the answer must not take longer for a
// registered email than for an unknown one.
func (s *Service) mailLater(m mail.Message) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := s.mailer.Send(ctx, m); err != nil {
			s.log.Error("sign-in mail not delivered", "subject", m.Subject, "err", err)
		}
	}()
}

var errNoMailer = apierr.FailedPrecondition("mail is not configured on this server (SMTP_HOST)")

// sendSelfService issues and mails a link to an active user with that email; for
// anyone else it does nothing, and the caller answers the same either way.
func (s *Service) sendSelfService(ctx context.Context, l link, rawEmail, data string) error {
	email, err := service.Email(rawEmail)
	if err != nil {
		return err
	}
	if s.mailer == nil {
		return errNoMailer
	}
	c, err := s.store.CredentialsByEmail(ctx, email)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !c.Active) {
		s.audit(ctx, "", l.purpose+".request", "error.no_active_user", map[string]any{"email": email})
		return nil
	}
	if err != nil {
		return err
	}
	u, err := s.issue(ctx, l, c.ID, c.Email, data)
	if err != nil {
		return err
	}
	s.audit(ctx, c.ID, l.purpose+".request", "success", nil)
	s.mailLater(l.message(c.Email, u))
	return nil
}

// redeem uses up a link's token and returns the identity it signs in. Every
// failure is errBadLink, except a deactivated account.
func (s *Service) redeem(ctx context.Context, purpose, rawEmail, token string) (*store.Identity, string, error) {
	email := store.NormalizeEmail(rawEmail)
	if token == "" || len(token) > 256 {
		return nil, "", errBadLink
	}
	t, err := s.store.ConsumeOneTimeToken(ctx, purpose, auth.HashToken(token), s.now())
	if errors.Is(err, store.ErrNotFound) {
		s.audit(ctx, "", purpose+".redeem", "error.invalid", map[string]any{"email": email})
		return nil, "", errBadLink
	}
	if err != nil {
		return nil, "", err
	}
	id, err := s.store.Identity(ctx, t.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", errBadLink
	}
	if err != nil {
		return nil, "", err
	}
	if email != "" && subtle.ConstantTimeCompare([]byte(email), []byte(id.Email)) != 1 {
		s.audit(ctx, t.UserID, purpose+".redeem", "error.email_mismatch", nil)
		return nil, "", errBadLink
	}
	if !id.Active {
		s.audit(ctx, id.UserID, purpose+".redeem", "error.deactivated", nil)
		return nil, "", errDeactivated
	}
	s.audit(ctx, id.UserID, purpose+".redeem", "success", nil)
	return id, t.Data, nil
}

// session issues a session token for an identity.
func (s *Service) session(id *store.Identity) (string, error) {
	tok, _, err := s.issuer.Session(id.UserID, id.Email)
	return tok, err
}

// SendMagicLink implements AuthService.
func (s *Service) SendMagicLink(ctx context.Context, req *agnesv1.SendMagicLinkRequest) (*agnesv1.SendMagicLinkResponse, error) {
	if err := s.sendSelfService(ctx, magicLink, req.GetEmail(), ""); err != nil {
		return nil, err
	}
	return &agnesv1.SendMagicLinkResponse{Message: linkSentMessage}, nil
}

// VerifyMagicLink implements AuthService.
func (s *Service) VerifyMagicLink(ctx context.Context, req *agnesv1.VerifyMagicLinkRequest) (*agnesv1.VerifyMagicLinkResponse, error) {
	id, _, err := s.redeem(ctx, auth.PurposeMagicLink, req.GetEmail(), req.GetToken())
	if err != nil {
		return nil, err
	}
	tok, err := s.session(id)
	if err != nil {
		return nil, err
	}
	return &agnesv1.VerifyMagicLinkResponse{AccessToken: tok, TokenType: "bearer", Email: id.Email, Role: service.Role(id.IsAdmin)}, nil
}

// RequestPasswordReset implements AuthService.
func (s *Service) RequestPasswordReset(ctx context.Context, req *agnesv1.RequestPasswordResetRequest) (*agnesv1.RequestPasswordResetResponse, error) {
	if err := s.sendSelfService(ctx, resetLink, req.GetEmail(), ""); err != nil {
		return nil, err
	}
	return &agnesv1.RequestPasswordResetResponse{Message: linkSentMessage}, nil
}

// setPassword redeems a reset or setup token and sets the password. The password
// is checked first, so a too-short one does not use the link up.
func (s *Service) setPassword(ctx context.Context, purpose, email, token, password string) (*store.Identity, string, error) {
	hash, err := service.Password(ctx, password)
	if err != nil {
		return nil, "", err
	}
	id, _, err := s.redeem(ctx, purpose, email, token)
	if err != nil {
		return nil, "", err
	}
	if err := s.store.SetPassword(ctx, id.UserID, hash); err != nil {
		return nil, "", err
	}
	s.audit(ctx, id.UserID, "auth.password_set", "success", map[string]any{"via": purpose})
	tok, err := s.session(id)
	return id, tok, err
}

// ConfirmPasswordReset implements AuthService.
func (s *Service) ConfirmPasswordReset(ctx context.Context, req *agnesv1.ConfirmPasswordResetRequest) (*agnesv1.ConfirmPasswordResetResponse, error) {
	id, tok, err := s.setPassword(ctx, auth.PurposePasswordReset, req.GetEmail(), req.GetToken(), req.GetPassword())
	if err != nil {
		return nil, err
	}
	return &agnesv1.ConfirmPasswordResetResponse{AccessToken: tok, TokenType: "bearer", Email: id.Email,
		Role: service.Role(id.IsAdmin), Message: "Password reset successfully"}, nil
}

// SetupPassword implements AuthService.
func (s *Service) SetupPassword(ctx context.Context, req *agnesv1.SetupPasswordRequest) (*agnesv1.SetupPasswordResponse, error) {
	id, tok, err := s.setPassword(ctx, auth.PurposePasswordSetup, req.GetEmail(), req.GetToken(), req.GetPassword())
	if err != nil {
		return nil, err
	}
	return &agnesv1.SetupPasswordResponse{AccessToken: tok, TokenType: "bearer", Email: id.Email,
		Role: service.Role(id.IsAdmin), Message: "Password set successfully"}, nil
}

// adminLink issues a link for a user an admin names, mails it when a mailer is
// configured, and returns it.
func (s *Service) adminLink(ctx context.Context, l link, userID string) (string, bool, error) {
	u, err := s.store.GetUser(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, apierr.NotFound("user %q not found", userID)
	}
	if err != nil {
		return "", false, err
	}
	if !u.Active {
		return "", false, apierr.FailedPrecondition("user %s is deactivated", u.Email)
	}
	link, err := s.issue(ctx, l, u.ID, u.Email, "")
	if err != nil {
		return "", false, err
	}
	sent := false
	if s.mailer != nil {
		err := s.mailer.Send(ctx, l.message(u.Email, link))
		_, logged := s.mailer.(mail.Log) // development: in the log, not mailed
		switch {
		case err != nil:
			s.log.ErrorContext(ctx, "sign-in mail not delivered", "subject", l.subject, "err", err)
		case !logged:
			sent = true
		}
	}
	s.audit(ctx, auth.FromContext(ctx).UserID, l.purpose+".admin_issue", "success",
		map[string]any{"user_id": u.ID, "email_sent": sent})
	return link, sent, nil
}

// InviteUser implements AuthService.
func (s *Service) InviteUser(ctx context.Context, req *agnesv1.InviteUserRequest) (*agnesv1.InviteUserResponse, error) {
	link, sent, err := s.adminLink(ctx, setupLink, req.GetUserId())
	if err != nil {
		return nil, err
	}
	return &agnesv1.InviteUserResponse{InviteUrl: link, EmailSent: sent}, nil
}

// ResetUserPassword implements AuthService.
func (s *Service) ResetUserPassword(ctx context.Context, req *agnesv1.ResetUserPasswordRequest) (*agnesv1.ResetUserPasswordResponse, error) {
	link, sent, err := s.adminLink(ctx, resetLink, req.GetUserId())
	if err != nil {
		return nil, err
	}
	return &agnesv1.ResetUserPasswordResponse{ResetUrl: link, EmailSent: sent}, nil
}

// Invite issues and mails a setup link for a user (for POST /api/users with
// send_invite): the link, and whether it was mailed.
func (s *Service) Invite(ctx context.Context, userID string) (string, bool, error) {
	return s.adminLink(ctx, setupLink, userID)
}

// ExchangeCLICode implements AuthService.
func (s *Service) ExchangeCLICode(ctx context.Context, req *agnesv1.ExchangeCLICodeRequest) (*agnesv1.ExchangeCLICodeResponse, error) {
	bad := apierr.Unauthenticated("invalid or expired code")
	if req.GetCode() == "" || len(req.GetCode()) > 256 {
		return nil, bad
	}
	t, err := s.store.ConsumeOneTimeToken(ctx, auth.PurposeCLICode, auth.HashToken(req.GetCode()), s.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, bad
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(s256(req.GetCodeVerifier())), []byte(t.Data)) != 1 {
		s.audit(ctx, t.UserID, "auth.cli_code", "error.verifier", nil)
		return nil, bad
	}
	id, err := s.store.Identity(ctx, t.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, bad
	}
	if err != nil {
		return nil, err
	}
	if !id.Active {
		return nil, errDeactivated
	}
	tok, err := s.session(id)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, id.UserID, "auth.cli_code", "success", nil)
	return &agnesv1.ExchangeCLICodeResponse{AccessToken: tok, TokenType: "bearer", Email: id.Email, Role: service.Role(id.IsAdmin)}, nil
}

// s256 is the PKCE S256 transform of a verifier.
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
