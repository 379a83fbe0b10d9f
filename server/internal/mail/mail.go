// Package mail sends the sign-in mails (magic links, invites, password resets):
// over SMTP with go-mail (STARTTLS, implicit TLS, or plain for a relay on
// loopback; authentication when a user is set), or — in development, when no
// SMTP server is configured and the server listens on loopback — into the log.
package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/agnesdata/agnes/connectors"
)

// Message is one mail to one recipient.
type Message struct {
	To      string
	Subject string
	Text    string // the plain-text body
	HTML    string // an HTML alternative; optional
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// TLS modes of the SMTP connection.
const (
	TLSStartTLS = "starttls" // connect in plain text, then STARTTLS (mandatory); port 587
	TLSImplicit = "tls"      // TLS from the first byte; port 465
	TLSNone     = "none"     // no encryption: only for a relay on loopback; port 25
)

// Config is how to reach the SMTP server.
type Config struct {
	Host     string
	Port     int // 0: the TLS mode's usual port
	User     string
	Password connectors.Secret
	From     string
	TLS      string // TLSStartTLS (default), TLSImplicit or TLSNone

	tlsConfig *tls.Config // tests trust their own CA through it
}

// sendTimeout bounds one delivery (dial, TLS, auth, data).
const sendTimeout = 30 * time.Second

// SMTP sends through an SMTP server, one connection per message: sign-in
// mails are rare, and a fresh connection never finds a stale one.
type SMTP struct {
	cfg  Config
	opts []gomail.Option
}

// NewSMTP checks the configuration and returns the sender.
func NewSMTP(cfg Config) (*SMTP, error) {
	if cfg.Host == "" {
		return nil, errors.New("smtp: host is required")
	}
	if cfg.From == "" {
		return nil, errors.New("smtp: from (SMTP_FROM) is required")
	}
	if err := gomail.NewMsg().From(cfg.From); err != nil {
		return nil, fmt.Errorf("smtp: from %q is not an address: %w", cfg.From, err)
	}
	opts := []gomail.Option{gomail.WithTimeout(sendTimeout)}
	port := cfg.Port
	switch cfg.TLS {
	case "", TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
		port = orDefault(port, 587)
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
		port = orDefault(port, 465)
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
		port = orDefault(port, 25)
	default:
		return nil, fmt.Errorf("smtp: tls %q must be starttls, tls or none", cfg.TLS)
	}
	opts = append(opts, gomail.WithPort(port))
	if cfg.tlsConfig != nil {
		opts = append(opts, gomail.WithTLSConfig(cfg.tlsConfig))
	}
	if cfg.User != "" {
		// Over TLS, the strongest mechanism the server offers. Without TLS, a password
		// travels in clear text: allowed only to a relay on this machine.
		auth := gomail.SMTPAuthAutoDiscover
		if cfg.TLS == TLSNone {
			if !isLoopback(cfg.Host) {
				return nil, errors.New("smtp: a password is sent without TLS (SMTP_TLS=none) only to a relay on loopback")
			}
			auth = gomail.SMTPAuthPlainNoEnc
		}
		opts = append(opts, gomail.WithSMTPAuth(auth),
			gomail.WithUsername(cfg.User), gomail.WithPassword(cfg.Password.Reveal()))
	}
	return &SMTP{cfg: cfg, opts: opts}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func orDefault(port, def int) int {
	if port == 0 {
		return def
	}
	return port
}

// Send implements Sender.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg := gomail.NewMsg()
	if err := msg.From(s.cfg.From); err != nil {
		return fmt.Errorf("mail from: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return fmt.Errorf("mail to %q: %w", m.To, err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	client, err := gomail.NewClient(s.cfg.Host, s.opts...)
	if err != nil {
		return fmt.Errorf("smtp client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("send mail via %s: %w", s.cfg.Host, err)
	}
	return nil
}

// Log is the development sender: it writes the message, link included, to the
// log instead of sending it. Use it only on a server that listens on loopback.
type Log struct{ Logger *slog.Logger }

// Send implements Sender.
func (l Log) Send(ctx context.Context, m Message) error {
	l.Logger.InfoContext(ctx, "mail not sent: no SMTP server is configured (development mode)",
		"to", m.To, "subject", m.Subject, "body", m.Text)
	return nil
}
