// Package app assembles the server: it opens state, builds every service, and serves
// Connect, gRPC, gRPC-Web, the REST mirror, reflection, health and /openapi.json on
// one http.Server.
package app

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/duckdb/duckdb-go/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/demo"
	"github.com/agnesdata/agnes/connectors/upload"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	"github.com/agnesdata/agnes/gen/openapi"
	"github.com/agnesdata/agnes/orchestrator/profile"
	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/analytics"
	"github.com/agnesdata/agnes/server/internal/apierr"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/config"
	"github.com/agnesdata/agnes/server/internal/engine"
	"github.com/agnesdata/agnes/server/internal/gateway"
	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/restjson"
	"github.com/agnesdata/agnes/server/internal/service/adminsvc"
	"github.com/agnesdata/agnes/server/internal/service/authsvc"
	"github.com/agnesdata/agnes/server/internal/service/catalogsvc"
	"github.com/agnesdata/agnes/server/internal/service/querysvc"
	"github.com/agnesdata/agnes/server/internal/service/syncsvc"
	"github.com/agnesdata/agnes/server/internal/sqlguard"
	"github.com/agnesdata/agnes/server/internal/store"
	"github.com/agnesdata/agnes/server/internal/syncer"
)

// Version is set at build time (-ldflags "-X .../app.Version=...").
var Version = "dev"

// Services are the API's service descriptors, in one place for the policy loader,
// the gateway, reflection and the tests.
func Services() []protoreflect.ServiceDescriptor {
	return []protoreflect.ServiceDescriptor{
		agnesv1.File_agnes_v1_auth_proto.Services().ByName("AuthService"),
		agnesv1.File_agnes_v1_admin_proto.Services().ByName("AdminService"),
		agnesv1.File_agnes_v1_sync_proto.Services().ByName("SyncService"),
		agnesv1.File_agnes_v1_query_proto.Services().ByName("QueryService"),
		agnesv1.File_agnes_v1_catalog_proto.Services().ByName("CatalogService"),
		agnesv1.File_agnes_v1_memory_proto.Services().ByName("MemoryService"),
	}
}

// App is a running server's parts.
type App struct {
	cfg       config.Config
	log       *slog.Logger
	Store     *store.Store
	Analytics *analytics.Analytics
	Syncer    *syncer.Syncer
	handler   http.Handler

	closers []func() error
}

// New opens state and builds the handler. On error everything opened is closed.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (a *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	services := Services()
	if err := access.Validate(services...); err != nil {
		return nil, err
	}
	a = &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			_ = a.Close()
		}
	}()

	a.Store, err = store.Open(ctx, cfg.StatePath())
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	a.closers = append(a.closers, a.Store.Close)

	secret, err := jwtSecret(cfg)
	if err != nil {
		return nil, err
	}
	issuer, err := auth.NewIssuer(secret)
	if err != nil {
		return nil, err
	}
	authn := auth.NewAuthenticator(issuer, a.Store)

	var limiter *access.RateLimiter
	if cfg.RateLimit {
		limiter = access.NewRateLimiter()
	}
	// Interceptor order, outermost first: record the outcome for the request log,
	// then turn errors into API errors (masking internals), then authorize. Authorization
	// runs before the handler decodes anything of its own, so denied callers learn nothing.
	interceptors := connect.WithInterceptors(outcomeInterceptor{}, apierr.Interceptor{}, access.NewAuthorizer(access.LoadPolicies(services...), limiter))
	opts := []connect.HandlerOption{interceptors, connect.WithReadMaxBytes(int(cfg.MaxBodyBytes))}

	rpc := http.NewServeMux()
	mount := func(path string, h http.Handler) { rpc.Handle(path, authn.Middleware(h)) }
	a.Analytics = analytics.New(cfg.DataDir, a.Store, engine.Options{
		MaxUserQueries: cfg.Query.PerUserConcurrency, MaxRows: cfg.Query.MaxRows,
		MaxBytes: cfg.Query.MaxBytes, Timeout: cfg.Query.Timeout,
	}, log)
	a.closers = append(a.closers, a.Analytics.Close)
	// The server rebuilds on start: extracts may have changed while it was down.
	if _, err := a.Analytics.Rebuild(ctx); err != nil {
		return nil, err
	}
	prof, err := profile.New(profile.Options{})
	if err != nil {
		return nil, fmt.Errorf("profiler: %w", err)
	}
	a.closers = append(a.closers, prof.Close)
	a.Syncer = syncer.New(cfg.DataDir, a.Store, a.Analytics, prof, log, Connectors(cfg)...)
	a.closers = append(a.closers, a.Syncer.Close)
	if err := a.Syncer.Recover(ctx); err != nil {
		return nil, fmt.Errorf("recover sync state: %w", err)
	}
	if cfg.Demo {
		if err := a.seedDemo(ctx); err != nil {
			return nil, fmt.Errorf("demo data: %w", err)
		}
	}
	guard, err := newSandbox(a)
	if err != nil {
		return nil, err
	}
	queries := querysvc.New(a.Analytics.Engine, guard, querysvc.Limits{
		MaxRows: cfg.Query.MaxRows, MaxBytes: cfg.Query.MaxBytes, Timeout: cfg.Query.Timeout,
		PerUser: cfg.Query.PerUserConcurrency, MaxBodyBytes: cfg.MaxBodyBytes,
	})

	mount(agnesv1connect.NewAuthServiceHandler(authsvc.New(a.Store, issuer, cfg.SecureCookies()), opts...))
	rest := restjson.New(services)
	syncs := syncsvc.New(cfg.DataDir, a.Store, a.Syncer, rest)
	admin := adminsvc.New(a.Store, Version, a.Analytics, a.Syncer)
	mount(agnesv1connect.NewAdminServiceHandler(admin, opts...))
	// Query results (Arrow IPC) and Parquet chunks are already compact: gzip would cost
	// more CPU than it saves, so these two services do not offer it.
	bulk := append(slices.Clone(opts), connect.WithCompression("gzip", nil, nil))
	mount(agnesv1connect.NewSyncServiceHandler(syncs, bulk...))
	// The Query service sends rows in the wire form it encodes them in (its own codecs).
	mount(queries.Handler(bulk...))
	mount(agnesv1connect.NewCatalogServiceHandler(catalogsvc.New(a.Store, a.Analytics.Engine, a.Syncer), opts...))
	mount(agnesv1connect.NewMemoryServiceHandler(agnesv1connect.UnimplementedMemoryServiceHandler{}, opts...))

	names := make([]string, 0, len(services))
	for _, sd := range services {
		names = append(names, string(sd.FullName()))
	}
	reflector := grpcreflect.NewStaticReflector(append(names, grpchealth.HealthV1ServiceName,
		grpcreflect.ReflectV1ServiceName, grpcreflect.ReflectV1AlphaServiceName)...)
	rpc.Handle(grpcreflect.NewHandlerV1(reflector))
	rpc.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	rpc.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(names...)))

	conn, err := a.inMemoryConn(rpc)
	if err != nil {
		return nil, err
	}
	mirror, err := gateway.New(ctx, conn, services, gateway.Options{MaxBodyBytes: cfg.MaxBodyBytes, JSON: rest})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}

	root := http.NewServeMux()
	root.Handle("/", rpc)
	root.Handle("/api/", mirror)
	root.Handle("/auth/", mirror)
	root.Handle(syncsvc.ManifestPattern, authn.Middleware(http.HandlerFunc(syncs.Manifest)))
	root.Handle(querysvc.QueryPattern, authn.Middleware(queries.QueryHandler()))
	root.Handle(querysvc.StreamPattern, authn.Middleware(queries.StreamREST(rest, cfg.MaxBodyBytes)))
	root.Handle(syncsvc.DownloadPattern, authn.Middleware(http.HandlerFunc(syncs.Download)))
	root.Handle(adminsvc.UploadPattern, authn.Middleware(admin.NewUploads(uploadDir(cfg), cfg.MaxUploadBytes)))
	root.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.Spec)
	})
	a.handler = recoverPanics(log, reqctx.Edge(cfg.TrustForwardedFor, accessLog(log, notFoundJSON(root, rpc))))
	return a, nil
}

// Connectors are the sources this server can sync.
func Connectors(cfg config.Config) []connectors.Connector {
	return []connectors.Connector{
		demo.New(),
		upload.New(uploadDir(cfg)),
	}
}

func uploadDir(cfg config.Config) string { return filepath.Join(cfg.DataDir, "uploads") }

// newSandbox opens the private in-memory DuckDB the SQL sandbox parses with.
func newSandbox(a *App) (*sqlguard.Checker, error) {
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("sandbox parser: %w", err)
	}
	db := sql.OpenDB(connector)
	a.closers = append(a.closers, db.Close)
	return sqlguard.New(db), nil
}

// inMemoryConn serves the Connect handlers on an in-memory listener and dials it: the
// REST mirror's way back into the same interceptors, without a TCP hop.
func (a *App) inMemoryConn(rpc http.Handler) (*grpc.ClientConn, error) {
	lis := bufconn.Listen(1 << 20)
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: recoverPanics(a.log, reqctx.Internal(rpc)), Protocols: &protocols, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	a.closers = append(a.closers, srv.Close)
	conn, err := grpc.NewClient("passthrough:///agnes-inmemory",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(int(a.cfg.MaxBodyBytes)+1024)))
	if err != nil {
		return nil, fmt.Errorf("in-memory connection: %w", err)
	}
	a.closers = append(a.closers, conn.Close)
	return conn, nil
}

// Handler is the public handler (for tests and embedding).
func (a *App) Handler() http.Handler { return a.handler }

// Serve serves on ln until ctx ends, then shuts down gracefully.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           a.handler,
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: query results and downloads stream for as long as they need;
		// queries have their own wall-clock limit.
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	go a.Syncer.RunScheduler(ctx, time.Minute)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// Close releases everything, newest first.
func (a *App) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}

// NeedsBootstrap reports whether no user can sign in yet.
func (a *App) NeedsBootstrap(ctx context.Context) bool {
	any, err := a.Store.AnyPassword(ctx)
	return err == nil && !any
}

// jwtSecret returns the configured secret, or the one persisted in the state
// directory, generating it on first start.
func jwtSecret(cfg config.Config) ([]byte, error) {
	if cfg.JWTSecret != "" {
		return []byte(cfg.JWTSecret), nil
	}
	path := filepath.Join(cfg.DataDir, "state", ".jwt_secret")
	if b, err := os.ReadFile(path); err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return nil, fmt.Errorf("%s: secret shorter than 32 characters", path)
		}
		return []byte(s), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read JWT secret: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	secret := hex.EncodeToString(raw)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(secret+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write JWT secret: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("write JWT secret: %w", err)
	}
	return []byte(secret), nil
}
