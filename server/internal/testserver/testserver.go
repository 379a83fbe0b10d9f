// Package testserver boots the real server in-process on a loopback port — the same
// app, HTTP/1.1 and h2c, every protocol — and hands tests clients for Connect, gRPC
// and REST plus tokens for an admin and a plain user.
package testserver

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/client/sdk"
	"github.com/agnesdata/agnes/connectors"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/app"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/config"
	"github.com/agnesdata/agnes/server/internal/store"
)

// Secret is the JWT secret test servers use, so tests can mint tokens.
const Secret = "test-secret-test-secret-test-secret-0123456789"

// Server is a running test server.
type Server struct {
	URL     string
	DataDir string
	App     *app.App
	Issuer  *auth.Issuer

	AdminID, UserID       string
	AdminToken, UserToken string

	stop func()
}

// Option adjusts the server before start.
type Option func(*setup)

type setup struct {
	cfg     config.Config
	log     io.Writer // the server log as JSON lines; nil: discarded (or the test log with -v)
	dataDir string    // an earlier server's (WithDataDir); "": a fresh one
}

// WithRateLimit turns the sign-in rate limits on (off by default in tests).
func WithRateLimit() Option { return func(s *setup) { s.cfg.RateLimit = true } }

// WithDemo seeds the demo tables on start, as a fresh server does.
func WithDemo() Option { return func(s *setup) { s.cfg.Demo = true } }

// WithConfig applies an arbitrary change.
func WithConfig(f func(*config.Config)) Option { return func(s *setup) { f(&s.cfg) } }

// WithDataDir starts the server on an earlier server's data directory (after
// its Stop), as a restart does: its admin and user are found, not created.
func WithDataDir(dir string) Option { return func(s *setup) { s.dataDir = dir } }

// WithLog sends the server's log, as JSON lines, to w.
func WithLog(w io.Writer) Option { return func(s *setup) { s.log = w } }

// New starts a server with a fresh data dir, an admin (admin@example.com) and a
// plain user (user@example.com), both with password "password123".
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.JWTSecret = connectors.NewSecret(Secret)
	cfg.Addr = "127.0.0.1:0"
	cfg.RateLimit = false
	cfg.Demo = false // tests make their own data; WithDemo turns it on
	set := &setup{cfg: cfg}
	for _, o := range opts {
		o(set)
	}
	cfg = set.cfg
	if set.dataDir != "" {
		cfg.DataDir = set.dataDir
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if set.log != nil {
		log = slog.New(slog.NewJSONHandler(set.log, nil))
	} else if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Logf("server stopped: %v", err)
			}
			_ = a.Close()
		})
	}
	t.Cleanup(stop)
	issuer, err := auth.NewIssuer([]byte(Secret))
	require.NoError(t, err)
	s := &Server{URL: "http://" + ln.Addr().String(), DataDir: cfg.DataDir, App: a, Issuer: issuer, stop: stop}

	const adminEmail, userEmail = "admin@example.com", "user@example.com"
	if set.dataDir != "" {
		s.AdminID, err = a.Store.UserIDByEmail(ctx, adminEmail)
		require.NoError(t, err)
		s.UserID, err = a.Store.UserIDByEmail(ctx, userEmail)
		require.NoError(t, err)
	} else {
		hash, err := auth.HashPassword("password123")
		require.NoError(t, err)
		admin, err := a.Store.Bootstrap(ctx, adminEmail, "Admin", hash)
		require.NoError(t, err)
		user, err := a.Store.CreateUser(ctx, store.NewUser{Email: userEmail, Name: "User", PasswordHash: hash})
		require.NoError(t, err)
		s.AdminID, s.UserID = admin.ID, user.ID
	}
	s.AdminToken, s.UserToken = s.Session(t, s.AdminID, adminEmail), s.Session(t, s.UserID, userEmail)
	return s
}

// Stop stops the server and releases its data directory (a test's cleanup
// does it otherwise).
func (s *Server) Stop() { s.stop() }

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Session mints a fresh session token for a user.
func (s *Server) Session(t testing.TB, userID, email string) string {
	t.Helper()
	tok, _, err := s.Issuer.Session(userID, email)
	require.NoError(t, err)
	return tok
}

// HTTP2Client speaks HTTP/2 without TLS (h2c), as gRPC needs. It is one
// client for every test: a transport per call would leave its connections
// open, and the server limits connections per client address.
func HTTP2Client() *http.Client { return h2cClient }

var h2cClient = func() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{}}, Timeout: 60 * time.Second}
}()

// Protocol is one way of calling the API.
type Protocol string

// The protocols every RPC test runs through.
const (
	Connect Protocol = "connect"
	GRPC    Protocol = "grpc"
	REST    Protocol = "rest"
)

// RPCProtocols are the protocols served by connect-go clients.
var RPCProtocols = []Protocol{Connect, GRPC}

// ClientOptions returns connect client options for a protocol.
func ClientOptions(p Protocol) []connect.ClientOption {
	if p == GRPC {
		return []connect.ClientOption{connect.WithGRPC()}
	}
	return nil
}

// Bearer returns a client option adding a bearer token (for raw connect clients).
func Bearer(token string) connect.ClientOption {
	return connect.WithInterceptors(sdk.BearerAuth(token))
}

// Clients are the Go SDK's typed clients for every service, over one protocol.
type Clients = sdk.Client

// Clients returns the SDK over protocol p (Connect or gRPC, on HTTP/2) with token.
func (s *Server) Clients(p Protocol, token string) *Clients {
	opts := []sdk.Option{sdk.WithHTTPClient(HTTP2Client())}
	if p == GRPC {
		opts = append(opts, sdk.WithGRPC())
	}
	return sdk.New(s.URL, token, opts...)
}

// Grant gives the plain user access to a table through a fresh group.
func (s *Server) Grant(t testing.TB, table string) {
	t.Helper()
	ctx := context.Background()
	c := s.Clients(Connect, s.AdminToken)
	g, err := c.Admin.CreateGroup(ctx, &agnesv1.CreateGroupRequest{Name: "readers-" + table})
	require.NoError(t, err)
	_, err = c.Admin.AddGroupMember(ctx, &agnesv1.AddGroupMemberRequest{GroupId: g.GetGroup().GetId(), UserId: s.UserID})
	require.NoError(t, err)
	_, err = c.Admin.CreateGrant(ctx, &agnesv1.CreateGrantRequest{GroupId: g.GetGroup().GetId(), ResourceType: "table", ResourceId: table})
	require.NoError(t, err)
}
