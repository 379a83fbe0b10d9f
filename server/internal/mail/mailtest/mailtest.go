// Package mailtest runs a real SMTP server (emersion/go-smtp) on loopback for
// tests: it receives what the server mails, decodes the MIME parts (go-mail
// sends quoted-printable), and hands the messages to the test.
package mailtest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is a received mail, decoded.
type Message struct {
	From, To, Subject string
	Text, HTML        string
	Raw               []byte
}

// Link returns the first http(s) URL in the text body that contains substr.
func (m *Message) Link(t testing.TB, substr string) string {
	t.Helper()
	for _, u := range linkRE.FindAllString(m.Text, -1) {
		if strings.Contains(u, substr) {
			return u
		}
	}
	t.Fatalf("no link containing %q in mail %q:\n%s", substr, m.Subject, m.Text)
	return ""
}

var linkRE = regexp.MustCompile(`https?://[^\s<>"]+`)

// Server is a running SMTP server.
type Server struct {
	Host string
	Port int
	// User and Password, when set, are required (AUTH PLAIN).
	User, Password string

	srv      *smtp.Server
	implicit *tls.Config
	msgs     chan *Message
}

// Option adjusts the server before it starts.
type Option func(*Server)

// WithAuth requires AUTH PLAIN with these credentials.
func WithAuth(user, password string) Option {
	return func(s *Server) { s.User, s.Password = user, password }
}

// WithTLS offers STARTTLS with cfg (or, with implicit, speaks TLS from the first byte).
func WithTLS(cfg *tls.Config, implicit bool) Option {
	return func(s *Server) {
		s.srv.TLSConfig = cfg
		if implicit {
			s.srv.TLSConfig = nil
			s.implicit = cfg
		}
	}
}

// Start runs a server on 127.0.0.1 until the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{msgs: make(chan *Message, 64)}
	s.srv = smtp.NewServer(backend{s})
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true // a relay on loopback, as SMTP_TLS=none allows
	s.srv.ReadTimeout, s.srv.WriteTimeout = 10*time.Second, 10*time.Second
	for _, o := range opts {
		o(s)
	}
	var ln net.Listener
	var err error
	if s.implicit != nil {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", s.implicit)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	s.Host, s.Port = "127.0.0.1", addr.Port
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// Next waits for the next message (failing the test after 10 s without one).
func (s *Server) Next(t testing.TB) *Message {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no mail arrived")
		return nil
	}
}

// None checks that no message is waiting.
func (s *Server) None(t testing.TB) {
	t.Helper()
	select {
	case m := <-s.msgs:
		t.Fatalf("unexpected mail to %s: %q", m.To, m.Subject)
	default:
	}
}

type backend struct{ s *Server }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s        *Server
	authed   bool
	from, to string
}

func (se *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (se *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != se.s.User || pass != se.s.Password {
			return errors.New("invalid credentials")
		}
		se.authed = true
		return nil
	}), nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if se.s.User != "" && !se.authed {
		return smtp.ErrAuthRequired
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.to = to
	return nil
}

func (se *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := parse(raw)
	if err != nil {
		return err
	}
	m.From, m.To = se.from, se.to
	se.s.msgs <- m
	return nil
}

func (se *session) Reset()        {}
func (se *session) Logout() error { return nil }

// parse decodes a message: its subject and its text and HTML parts.
func parse(raw []byte) (*Message, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return nil, err
	}
	out := &Message{Subject: subject, Raw: raw}
	return out, walk(out, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
}

func walk(out *Message, contentType, encoding string, body io.Reader) error {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return err
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := walk(out, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); err != nil {
				return err
			}
		}
	}
	if strings.EqualFold(encoding, "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	text, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	switch mediaType {
	case "text/plain":
		out.Text = string(text)
	case "text/html":
		out.HTML = string(text)
	}
	return nil
}
