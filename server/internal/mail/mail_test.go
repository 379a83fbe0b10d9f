package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/server/internal/mail/mailtest"
)

// testTLS returns a server certificate for 127.0.0.1 and a client config that trusts it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	hs := httptest.NewUnstartedServer(nil)
	hs.StartTLS()
	t.Cleanup(hs.Close)
	pool := x509.NewCertPool()
	pool.AddCert(hs.Certificate())
	return hs.TLS.Clone(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

const body = "Sign in: https://agnes.example.com/auth/email/verify?email=ana%40example.com&token=" +
	"a-token-long-enough-that-quoted-printable-must-wrap-the-line-somewhere-around-here=="

func TestSendsOverEveryTLSMode(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	cases := map[string]struct {
		opts []mailtest.Option
		cfg  Config
	}{
		"none with auth": {[]mailtest.Option{mailtest.WithAuth("agnes", "s3cret")},
			Config{TLS: TLSNone, User: "agnes", Password: connectors.NewSecret("s3cret")}},
		"starttls": {[]mailtest.Option{mailtest.WithTLS(serverTLS, false), mailtest.WithAuth("agnes", "s3cret")},
			Config{TLS: TLSStartTLS, User: "agnes", Password: connectors.NewSecret("s3cret"), tlsConfig: clientTLS}},
		"implicit tls": {[]mailtest.Option{mailtest.WithTLS(serverTLS, true)},
			Config{TLS: TLSImplicit, tlsConfig: clientTLS}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			srv := mailtest.Start(t, tc.opts...)
			cfg := tc.cfg
			cfg.Host, cfg.Port, cfg.From = srv.Host, srv.Port, "Agnes <agnes@example.com>"
			s, err := NewSMTP(cfg)
			require.NoError(t, err)
			require.NoError(t, s.Send(context.Background(), Message{To: "ana@example.com", Subject: "Your sign-in link — Agnes",
				Text: body, HTML: "<p>" + body + "</p>"}))
			m := srv.Next(t)
			require.Equal(t, "agnes@example.com", m.From)
			require.Equal(t, "ana@example.com", m.To)
			require.Equal(t, "Your sign-in link — Agnes", m.Subject)
			require.Equal(t, body, strings.TrimSpace(m.Text), "the body survives quoted-printable")
			require.Contains(t, m.HTML, body)
		})
	}
}

func TestRefusedDeliveriesAreErrors(t *testing.T) {
	serverTLS, _ := testTLS(t)
	srv := mailtest.Start(t, mailtest.WithAuth("agnes", "s3cret"))
	s, err := NewSMTP(Config{Host: srv.Host, Port: srv.Port, From: "agnes@example.com", TLS: TLSNone,
		User: "agnes", Password: connectors.NewSecret("wrong-password")})
	require.NoError(t, err)
	err = s.Send(context.Background(), Message{To: "ana@example.com", Subject: "x", Text: "x"})
	require.Error(t, err, "wrong credentials")
	require.NotContains(t, err.Error(), "wrong-password", "the password never reaches an error")

	// STARTTLS is mandatory by default: a server that does not offer it is refused.
	plain := mailtest.Start(t)
	s, err = NewSMTP(Config{Host: plain.Host, Port: plain.Port, From: "agnes@example.com"})
	require.NoError(t, err)
	require.Error(t, s.Send(context.Background(), Message{To: "ana@example.com", Subject: "x", Text: "x"}))
	plain.None(t)

	// A certificate the client does not trust is refused.
	untrusted := mailtest.Start(t, mailtest.WithTLS(serverTLS, true))
	s, err = NewSMTP(Config{Host: untrusted.Host, Port: untrusted.Port, From: "agnes@example.com", TLS: TLSImplicit})
	require.NoError(t, err)
	require.Error(t, s.Send(context.Background(), Message{To: "ana@example.com", Subject: "x", Text: "x"}))
}

func TestBadConfigIsRefused(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no host":  {From: "a@example.com"},
		"no from":  {Host: "smtp.example.com"},
		"bad from": {Host: "smtp.example.com", From: "not an address"},
		"bad tls":  {Host: "smtp.example.com", From: "a@example.com", TLS: "ssl"},
	} {
		_, err := NewSMTP(cfg)
		require.Error(t, err, name)
	}
}
