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
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
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
	"github.com/agnesdata/agnes/connectors/bigquery"
	"github.com/agnesdata/agnes/connectors/demo"
	"github.com/agnesdata/agnes/connectors/jira"
	"github.com/agnesdata/agnes/connectors/keboola"
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
	"github.com/agnesdata/agnes/server/internal/jiraserver"
	"github.com/agnesdata/agnes/server/internal/jobs"
	"github.com/agnesdata/agnes/server/internal/mail"
	"github.com/agnesdata/agnes/server/internal/oidc"
	"github.com/agnesdata/agnes/server/internal/pushdown"
	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/restjson"
	"github.com/agnesdata/agnes/server/internal/route"
	"github.com/agnesdata/agnes/server/internal/service/adminsvc"
	"github.com/agnesdata/agnes/server/internal/service/authsvc"
	"github.com/agnesdata/agnes/server/internal/service/catalogsvc"
	"github.com/agnesdata/agnes/server/internal/service/querysvc"
	"github.com/agnesdata/agnes/server/internal/service/syncsvc"
	"github.com/agnesdata/agnes/server/internal/sources"
	"github.com/agnesdata/agnes/server/internal/sqlguard"
	"github.com/agnesdata/agnes/server/internal/store"
	"github.com/agnesdata/agnes/server/internal/store/cached"
	"github.com/agnesdata/agnes/server/internal/store/duckdbstore"
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
		agnesv1.File_agnes_v1_jira_proto.Services().ByName("JiraService"),
	}
}

// App is a running server's parts.
type App struct {
	cfg       config.Config
	log       *slog.Logger
	Store     store.Store
	Analytics *analytics.Analytics
	Syncer    *syncer.Syncer
	Jira      *jiraserver.Server
	Jobs      *jobs.Runner
	handler   http.Handler
	routes    []route.Route
	listenURL atomic.Value // "http://<addr>" once serving: links point there without a public URL
	trusted   []netip.Prefix

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
	app := &App{cfg: cfg, log: log}
	a = app
	defer func() {
		if err != nil {
			_ = app.Close() // a is nil by now: every error return says return nil, err
		}
	}()

	instances, err := Sources(cfg, os.Getenv)
	if err != nil {
		return nil, err
	}
	state, err := duckdbstore.Open(ctx, cfg.StatePath())
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	a.Store = cached.New(state, cached.DefaultSize)
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
	if !cfg.SchedulerToken.IsZero() {
		if err := authn.AddServiceToken(auth.ServiceToken{Name: "scheduler", Secret: cfg.SchedulerToken.Reveal(),
			Procedures: schedulerProcedures}); err != nil {
			return nil, err
		}
	}

	var limiter *access.RateLimiter
	if cfg.RateLimit {
		limiter = access.NewRateLimiter()
	}
	// Interceptor order, outermost first: record the outcome for the request log,
	// then turn errors into API errors (masking internals), then authorize. Authorization
	// runs before the handler decodes anything of its own, so denied callers learn nothing.
	policies := access.LoadPolicies(services...)
	authorizer := access.NewAuthorizer(policies, limiter)
	interceptors := connect.WithInterceptors(outcomeInterceptor{}, apierr.Interceptor{}, authorizer)
	opts := []connect.HandlerOption{interceptors, connect.WithReadMaxBytes(int(cfg.MaxBodyBytes))}

	rpc := http.NewServeMux()
	mount := func(path string, h http.Handler) {
		rpc.Handle(path, authn.Middleware(precheckRPC(policies, cfg.Limits.PublicBodyBytes, h)))
	}
	memory := machineMemory()
	memoryLimit, answerMemory := cfg.Query.MemoryLimit, cfg.Query.AnswerMemory
	if memoryLimit == "" && memory > 0 {
		memoryLimit = fmt.Sprintf("%dMB", memory/2>>20)
	}
	if answerMemory == 0 && memory > 0 {
		answerMemory = memory / 4
	}
	a.Analytics = analytics.New(cfg.DataDir, a.Store, engine.Options{
		MaxUserQueries: cfg.Query.PerUserConcurrency, MaxRows: cfg.Query.MaxRows,
		MaxBytes: cfg.Query.MaxBytes, Timeout: cfg.Query.Timeout,
		PerUserSlots: cfg.Query.PerUserSlots, MaxQueue: cfg.Query.MaxQueue, MaxWait: cfg.Query.MaxWait,
		MemoryLimit: memoryLimit, Threads: cfg.Query.Threads, MaxTempSize: cfg.Query.MaxTempSize,
		TempDir: filepath.Join(cfg.DataDir, "analytics", "tmp"),
	}, log)
	log.Info("query engine limits", "memory_limit", memoryLimit, "answer_memory", answerMemory,
		"max_temp_size", cfg.Query.MaxTempSize, "threads", cfg.Query.Threads)
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
	a.Jobs = jobs.New(a.Store, jobs.Options{Node: cfg.Node, Retention: cfg.JobRetention, Log: log})
	a.Syncer = syncer.New(cfg.DataDir, a.Store, a.Analytics, prof, a.Jobs, log, instances...)
	if err := a.Syncer.Recover(ctx); err != nil {
		return nil, fmt.Errorf("recover sync state: %w", err)
	}
	abandoned, err := adminsvc.RecoverUploads(uploadDir(cfg))
	if err != nil {
		return nil, err
	}
	a.Jira, err = jiraserver.New(cfg.DataDir, a.Store, a.Analytics, a.Jobs, instances, jiraserver.Options{Log: log, Profile: a.Syncer.Profile})
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.Jira.Close)
	a.Syncer.HandOver(jira.Type, a.Jira.Resync)
	if err := a.Jobs.Start(ctx); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() error { a.Jobs.Stop(); return nil })
	a.unregisterAbandoned(ctx, abandoned, log)
	if cfg.Demo {
		if err := a.seedDemo(ctx); err != nil {
			return nil, fmt.Errorf("demo data: %w", err)
		}
	}
	guard, parser, err := newSandbox(a)
	if err != nil {
		return nil, err
	}
	remote := pushdown.New(a.Store, a.Syncer, parser, pushdown.Limits{
		MaxScanBytes: cfg.Query.RemoteMaxScanBytes, DailyBytes: cfg.Query.RemoteDailyBytes})
	queries := querysvc.New(a.Analytics.Engine, guard, querysvc.Limits{
		MaxRows: cfg.Query.MaxRows, MaxBytes: cfg.Query.MaxBytes, Timeout: cfg.Query.Timeout,
		PerUser: cfg.Query.PerUserConcurrency, MaxBodyBytes: cfg.MaxBodyBytes, AnswerMemory: answerMemory,
	}, remote)
	health := sources.New(a.Syncer, log)
	a.verifySources(health)

	signin, err := a.signInOptions(cfg, log)
	if err != nil {
		return nil, err
	}
	signin.MaxTokenDays, signin.AllowNonExpiringTokens = cfg.Tokens.MaxDays, cfg.Tokens.AllowNonExpiring
	auths := authsvc.New(a.Store, issuer, signin)
	mount(agnesv1connect.NewAuthServiceHandler(auths, opts...))
	rest := restjson.New(services)
	syncs := syncsvc.New(cfg.DataDir, a.Store, a.Syncer, rest)
	admin := adminsvc.New(a.Store, Version, a.Syncer, auths, health)
	mount(agnesv1connect.NewAdminServiceHandler(admin, opts...))
	// Query results (Arrow IPC) and Parquet chunks are already compact: gzip would cost
	// more CPU than it saves, so these two services do not offer it.
	bulk := append(slices.Clone(opts), connect.WithCompression("gzip", nil, nil))
	mount(agnesv1connect.NewSyncServiceHandler(syncs, bulk...))
	// The Query service sends rows in the wire form it encodes them in (its own codecs).
	mount(queries.Handler(bulk...))
	mount(agnesv1connect.NewCatalogServiceHandler(catalogsvc.New(a.Store, a.Analytics.Engine, a.Syncer), opts...))
	mount(agnesv1connect.NewMemoryServiceHandler(agnesv1connect.UnimplementedMemoryServiceHandler{}, opts...))
	mount(agnesv1connect.NewJiraServiceHandler(a.Jira, opts...))

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
	mirror, err := gateway.New(ctx, conn, services, gateway.Options{MaxBodyBytes: cfg.MaxBodyBytes,
		PublicBodyBytes: cfg.Limits.PublicBodyBytes, JSON: rest})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}

	root := http.NewServeMux()
	root.Handle("/", rpc)
	root.Handle("/api/", authn.Middleware(mirror))
	root.Handle("/auth/", authn.Middleware(mirror))
	// Plain routes: what the gateway cannot serve, each under a declared policy.
	a.routes = append(slices.Concat(syncs.Routes(), queries.Routes(), auths.Routes(), a.Jira.Routes()),
		admin.NewUploads(uploadDir(cfg), cfg.MaxUploadBytes, cfg.Limits.UploadTimeout).Route(),
		route.Route{Pattern: "GET /openapi.json", Name: "openapi", Policy: route.Public,
			Handler: func(w http.ResponseWriter, _ *http.Request) error {
				w.Header().Set("Content-Type", "application/json")
				_, err := w.Write(openapi.Spec)
				return err
			}},
	)
	route.NewAdapter(authn, authorizer, log).Mount(root, a.routes...)
	csrf, err := auth.CSRF(trustedOrigins(cfg), notFoundJSON(root, rpc))
	if err != nil {
		return nil, err
	}
	a.trusted = trustedProxies(cfg)
	a.handler = recoverPanics(log, reqctx.Edge(a.trusted, bodyDeadline(cfg.Limits.BodyTimeout,
		accessLog(log, csrf))))
	return a, nil
}

// schedulerProcedures are what the scheduler sidecar's token may call: trigger
// and follow syncs and rebuilds, and health.
var schedulerProcedures = []string{
	agnesv1connect.SyncServiceTriggerSyncProcedure,
	agnesv1connect.SyncServiceGetSyncStatusProcedure,
	agnesv1connect.SyncServiceGetSyncJobProcedure,
	agnesv1connect.SyncServiceListSyncJobsProcedure,
	agnesv1connect.SyncServiceWatchSyncJobProcedure,
	agnesv1connect.AdminServiceRebuildAnalyticsProcedure,
	agnesv1connect.AdminServiceGetHealthProcedure,
}

// baseURL is where mailed links and the OIDC redirect point: the public URL, or
// the address the server listens on (development on loopback).
func (a *App) baseURL() string {
	if a.cfg.PublicURL != "" {
		return strings.TrimRight(a.cfg.PublicURL, "/")
	}
	if u, ok := a.listenURL.Load().(string); ok {
		return u
	}
	return "http://" + a.cfg.Addr
}

// trustedOrigins are the origins a browser may send state-changing requests
// from besides the request's own Host: the public URL's (behind a proxy that
// rewrites Host).
func trustedOrigins(cfg config.Config) []string {
	u, err := url.Parse(cfg.PublicURL)
	if cfg.PublicURL == "" || err != nil || u.Host == "" {
		return nil
	}
	return []string{u.Scheme + "://" + u.Host}
}

// signInOptions builds the mailer and the OIDC provider of the sign-in flows.
func (a *App) signInOptions(cfg config.Config, log *slog.Logger) (authsvc.Options, error) {
	opts := authsvc.Options{SecureCookies: cfg.SecureCookies(), BaseURL: a.baseURL, Log: log}
	switch {
	case cfg.SMTP.Host != "":
		m, err := mail.NewSMTP(mail.Config{Host: cfg.SMTP.Host, Port: cfg.SMTP.Port, User: cfg.SMTP.User,
			Password: cfg.SMTP.Password, From: cfg.SMTP.From, TLS: cfg.SMTP.TLSMode()})
		if err != nil {
			return opts, err
		}
		opts.Mailer = m
	case cfg.Loopback():
		opts.Mailer = mail.Log{Logger: log}
	default:
		log.Warn("no SMTP server configured (SMTP_HOST): magic links, invites and password resets cannot be mailed")
	}
	o := cfg.OIDC
	if !o.Enabled() {
		return opts, nil
	}
	g := &authsvc.Google{
		Provider: oidc.New(oidc.Config{Issuer: o.IssuerURL(), ClientID: o.ClientID, ClientSecret: o.ClientSecret.Reveal(),
			Scopes: o.ScopeList(), RedirectURL: func() string { return a.baseURL() + "/auth/google/callback" }}),
		RequireHostedDomain: o.IssuerURL() == config.GoogleIssuer && len(o.AllowedDomains) > 0,
		Groups: authsvc.GroupSync{FromClaim: o.Groups.Source == config.GroupsFromClaim, Prefix: o.Groups.Prefix,
			AdminGroup: o.Groups.AdminGroup, EveryoneGroup: o.Groups.EveryoneGroup},
	}
	for _, d := range o.AllowedDomains {
		g.AllowedDomains = append(g.AllowedDomains, strings.ToLower(d))
	}
	if o.Groups.Source == config.GroupsFromDirectory {
		dir, err := oidc.NewDirectory(o.Groups.Directory(), o.Groups.Credentials, o.Groups.Subject)
		if err != nil {
			return opts, err
		}
		g.Groups.Directory = dir
	}
	opts.Google = g
	return opts, nil
}

// Sources are the source instances this server syncs: the configured ones
// (config `sources`, each built by its connector type's factory); for the
// company sources, a default instance named after the type from the Python
// system's environment variables (KEBOOLA_STACK_URL + KEBOOLA_STORAGE_TOKEN,
// BIGQUERY_PROJECT, JIRA_DOMAIN/JIRA_BASE_URL + ...) unless a source of that
// name is configured; and the built-in demo and upload instances.
func Sources(cfg config.Config, getenv func(string) string) ([]syncer.Source, error) {
	types := map[string]connectors.Factory{
		demo.Type: func(string, map[string]any) (connectors.Connector, error) { return demo.New(), nil },
		upload.Type: func(string, map[string]any) (connectors.Connector, error) {
			return upload.New(uploadDir(cfg)), nil
		},
		keboola.Type:  keboola.Open,
		bigquery.Type: bigquery.Open,
		jira.Type:     jira.Open,
	}
	configured := maps.Clone(cfg.Sources)
	if configured == nil {
		configured = map[string]map[string]any{}
	}
	for typ, env := range map[string]func(func(string) string) map[string]any{
		keboola.Type: keboola.EnvSettings, bigquery.Type: bigquery.EnvSettings, jira.Type: jira.EnvSettings,
	} {
		if raw := env(getenv); raw != nil && configured[typ] == nil {
			raw["type"] = typ
			configured[typ] = raw
		}
	}
	for _, typ := range []string{demo.Type, upload.Type} {
		if configured[typ] == nil {
			configured[typ] = map[string]any{"type": typ}
		}
	}
	var out []syncer.Source
	for _, name := range slices.Sorted(maps.Keys(configured)) {
		raw := maps.Clone(configured[name])
		typ, _ := raw["type"].(string)
		delete(raw, "type")
		factory, ok := types[typ]
		if !ok {
			return nil, fmt.Errorf("sources.%s: unknown connector type %q (known: %s)", name, typ,
				strings.Join(slices.Sorted(maps.Keys(types)), ", "))
		}
		c, err := factory(name, raw)
		if err != nil {
			return nil, fmt.Errorf("sources.%s: %w", name, err)
		}
		out = append(out, syncer.Source{Name: name, Connector: c})
	}
	return out, nil
}

func uploadDir(cfg config.Config) string { return filepath.Join(cfg.DataDir, "uploads") }

// newSandbox opens the private in-memory DuckDB the SQL sandbox parses with
// (the pushdown's translation parses with it too).
func newSandbox(a *App) (*sqlguard.Checker, *sql.DB, error) {
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox parser: %w", err)
	}
	db := sql.OpenDB(connector)
	a.closers = append(a.closers, db.Close)
	return sqlguard.New(db, sqlguard.Limits{BuilderSize: a.cfg.Query.MaxBuilderSize}), db, nil
}

// verifySources checks every source's credentials in the background: the
// outcome is logged and shown by ListSources; an unreachable source never
// holds up or fails the start. Close waits for the checks to stop.
func (a *App) verifySources(health *sources.Monitor) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		health.VerifyAll(ctx)
	}()
	a.closers = append(a.closers, func() error { cancel(); <-done; return nil })
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
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(gateway.MaxAnswerBytes), grpc.MaxCallSendMsgSize(int(a.cfg.MaxBodyBytes)+1024)))
	if err != nil {
		return nil, fmt.Errorf("in-memory connection: %w", err)
	}
	a.closers = append(a.closers, conn.Close)
	return conn, nil
}

// Routes are the plain HTTP routes (for the RBAC tests).
func (a *App) Routes() []route.Route { return a.routes }

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
		ReadHeaderTimeout: a.cfg.Limits.ReadHeaderTimeout,
		IdleTimeout:       a.cfg.Limits.IdleTimeout,
		MaxHeaderBytes:    a.cfg.Limits.MaxHeaderBytes,
		// No ReadTimeout or WriteTimeout: bodies have their own deadline
		// (bodyDeadline), and query results and downloads stream for as long as
		// they need; queries have their own wall-clock limit.
	}
	a.listenURL.Store("http://" + ln.Addr().String())
	ln = limitConnsPerIP(ln, a.cfg.Limits.MaxConnsPerIP, a.trusted)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	go a.Syncer.RunScheduler(ctx, time.Minute)
	go a.Jira.Run(ctx)
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
	if !cfg.JWTSecret.IsZero() {
		return []byte(cfg.JWTSecret.Reveal()), nil
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

// unregisterAbandoned removes the tables of new uploads a crash cut short
// before they were answered (RecoverUploads removed their files). The sync the
// crash interrupted holds the source's key until the runner has ended it.
func (a *App) unregisterAbandoned(ctx context.Context, ids []string, log *slog.Logger) {
	for _, id := range ids {
		for attempt := 1; ; attempt++ {
			err := a.Syncer.Unregister(ctx, id, "recovery")
			var busy *store.BusyError
			switch {
			case err == nil:
				log.Warn("the table of an upload cut short by a crash was unregistered", "table", id)
			case errors.Is(err, store.ErrNotFound): // cut short before it was registered
			case errors.As(err, &busy) && attempt < 10:
				_, _ = a.Jobs.Wait(ctx, busy.JobID)
				continue
			default:
				log.Error("unregister the table of an upload cut short by a crash", "table", id, "err", err)
			}
			break
		}
	}
}
