// Package config is the server's configuration: one struct with defaults, overridden
// in order by a YAML file (with ${ENV} references resolved), environment variables
// and command-line flags, and validated before anything is opened.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/extract"
)

// Secret is a credential: it never prints, logs or marshals itself.
type Secret = connectors.Secret

// Config is everything the server can be told.
type Config struct {
	// Addr is the one listen address for every protocol (AGNES_ADDR).
	Addr string `yaml:"addr"`
	// DataDir holds state/, analytics/ and extracts/ (DATA_DIR).
	DataDir string `yaml:"data_dir"`
	// JWTSecret signs tokens (JWT_SECRET_KEY). Empty: generated once and kept in
	// $DATA_DIR/state/.jwt_secret.
	JWTSecret Secret `yaml:"jwt_secret"`
	// PublicURL is how users reach the server; https:// marks cookies Secure (AGNES_PUBLIC_URL).
	PublicURL string `yaml:"public_url"`
	// TrustedProxies are the CIDRs (or IPs) of the reverse proxies in front of
	// the server (AGNES_TRUSTED_PROXIES, comma-separated). X-Forwarded-For is
	// read only on connections from them, and the client is the rightmost
	// address that is not one of them. AGNES_TRUST_FORWARDED_FOR=true, the old
	// switch, trusts loopback and private networks.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Limits bound what one client or connection may hold of the server.
	Limits Limits `yaml:"limits"`
	// RateLimit enables per-IP limits on sign-in RPCs (AGNES_RATE_LIMIT).
	RateLimit bool `yaml:"rate_limit"`
	// MaxBodyBytes caps request bodies (AGNES_MAX_BODY_BYTES).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxUploadBytes caps CSV/Parquet uploads, which stream to disk (AGNES_MAX_UPLOAD_BYTES).
	MaxUploadBytes int64 `yaml:"max_upload_bytes"`
	// Demo registers and syncs a small sample dataset on the first start, so a new
	// server shows real tables at once (AGNES_DEMO).
	Demo bool `yaml:"demo"`
	// ShutdownTimeout bounds graceful shutdown (AGNES_SHUTDOWN_TIMEOUT).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Log configures logging.
	Log Log `yaml:"log"`
	// Query bounds SQL execution.
	Query Query `yaml:"query"`
	// Tokens bound personal access tokens.
	Tokens Tokens `yaml:"tokens"`
	// Sources are the configured source instances by name (the name is also the
	// extract folder): each names its connector `type` and that type's settings,
	// e.g. two Keboola projects kbc_sales and kbc_finance. Secrets in settings come
	// from ${ENV} references, never from the file itself.
	Sources map[string]map[string]any `yaml:"sources"`
	// Node names this machine for job leases (AGNES_NODE_ID; default: the host name).
	Node string `yaml:"node"`
	// JobRetention is how long finished jobs are kept (AGNES_JOB_RETENTION;
	// 0: 30 days; each kind's latest is kept regardless).
	JobRetention time.Duration `yaml:"job_retention"`
	// SchedulerToken is the scheduler sidecar's shared secret (SCHEDULER_API_TOKEN, at
	// least 32 characters). It may call only the sync, job and health RPCs.
	SchedulerToken Secret `yaml:"scheduler_token"`
	// OIDC is sign-in with Google or any OpenID Connect provider.
	OIDC OIDC `yaml:"oidc"`
	// SMTP sends the sign-in mails: magic links, invites, password resets.
	SMTP SMTP `yaml:"smtp"`
}

// OIDC configures sign-in with Google (or Okta, Entra ID, Keycloak, ...). It is on
// when the client id and secret are set; the provider redirects back to
// <public_url>/auth/google/callback.
type OIDC struct {
	// ClientID is the OAuth client id (GOOGLE_CLIENT_ID).
	ClientID string `yaml:"client_id"`
	// ClientSecret is the OAuth client secret (GOOGLE_CLIENT_SECRET).
	ClientSecret Secret `yaml:"client_secret"`
	// Issuer is the provider's issuer URL, where discovery starts (AGNES_OIDC_ISSUER;
	// default Google's, see IssuerURL).
	Issuer string `yaml:"issuer"`
	// Scopes requested (AGNES_OIDC_SCOPES, space- or comma-separated; default
	// openid email profile); add "groups" for providers that put groups in the ID
	// token only when asked.
	Scopes []string `yaml:"scopes"`
	// AllowedDomains are the email domains that may sign in (AGNES_ALLOWED_DOMAINS,
	// comma-separated); empty allows any verified email. A Google Workspace hosted
	// domain (the hd claim) must be one of them too.
	AllowedDomains []string `yaml:"allowed_domains"`
	// Groups mirrors the provider's groups into Agnes groups at sign-in.
	Groups GroupSync `yaml:"groups"`
}

// Group sync sources.
const (
	GroupsFromClaim     = "claim"            // the ID token's groups claim
	GroupsFromDirectory = "google_directory" // the Google Admin SDK directory API
)

// GroupSync configures group sync at OIDC sign-in.
type GroupSync struct {
	// Source is "" (off), "claim" or "google_directory" (AGNES_GROUP_SYNC).
	Source string `yaml:"source"`
	// Prefix keeps only the groups whose email starts with it; a user whose
	// non-empty group list has none is refused (AGNES_GOOGLE_GROUP_PREFIX).
	Prefix string `yaml:"prefix"`
	// AdminGroup is the provider group mirrored onto Admin (AGNES_GROUP_ADMIN_EMAIL).
	AdminGroup string `yaml:"admin_group"`
	// EveryoneGroup is the provider group mirrored onto Everyone (AGNES_GROUP_EVERYONE_EMAIL).
	EveryoneGroup string `yaml:"everyone_group"`
	// DirectoryURL is the Admin SDK's base URL (AGNES_GOOGLE_DIRECTORY_URL; default
	// https://admin.googleapis.com).
	DirectoryURL string `yaml:"directory_url"`
	// Credentials is a service-account key file with domain-wide delegation of the
	// admin.directory.group.readonly scope (GOOGLE_ADMIN_SDK_CREDENTIALS).
	Credentials string `yaml:"credentials"`
	// Subject is the Workspace admin the service account acts as (GOOGLE_ADMIN_SDK_SUBJECT).
	Subject string `yaml:"subject"`
}

// Enabled reports whether OIDC sign-in is configured.
func (o OIDC) Enabled() bool { return o.ClientID != "" && !o.ClientSecret.IsZero() }

// GoogleIssuer is the default issuer.
const GoogleIssuer = "https://accounts.google.com"

// IssuerURL is the issuer, Google's by default.
func (o OIDC) IssuerURL() string { return cmp.Or(o.Issuer, GoogleIssuer) }

// ScopeList is the scopes requested, openid email profile by default.
func (o OIDC) ScopeList() []string {
	if len(o.Scopes) == 0 {
		return []string{"openid", "email", "profile"}
	}
	return o.Scopes
}

// Directory is the Admin SDK's base URL.
func (g GroupSync) Directory() string { return cmp.Or(g.DirectoryURL, "https://admin.googleapis.com") }

// SMTP configures outgoing mail. Without a host, mail goes to the log when the
// server listens on loopback (development) and cannot be sent otherwise.
type SMTP struct {
	// Host is the SMTP server (SMTP_HOST).
	Host string `yaml:"host"`
	// Port defaults to 587 (starttls), 465 (tls) or 25 (none) (SMTP_PORT).
	Port int `yaml:"port"`
	// User and Password authenticate, when set (SMTP_USER, SMTP_PASSWORD).
	User     string `yaml:"user"`
	Password Secret `yaml:"password"`
	// From is the sender address (SMTP_FROM).
	From string `yaml:"from"`
	// TLS is starttls (default), tls (implicit) or none, for a relay on loopback (SMTP_TLS).
	TLS string `yaml:"tls"`
}

// TLSMode is the TLS mode, starttls by default.
func (s SMTP) TLSMode() string { return cmp.Or(s.TLS, "starttls") }

// Limits are the server's edge limits.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers (AGNES_READ_HEADER_TIMEOUT).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// BodyTimeout bounds reading a request's body, from its first byte
	// (AGNES_BODY_TIMEOUT); uploads have UploadTimeout.
	BodyTimeout time.Duration `yaml:"body_timeout"`
	// UploadTimeout bounds reading an upload's body (AGNES_UPLOAD_TIMEOUT).
	UploadTimeout time.Duration `yaml:"upload_timeout"`
	// IdleTimeout closes idle keep-alive connections (AGNES_IDLE_TIMEOUT).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes caps a request's headers (AGNES_MAX_HEADER_BYTES).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxConnsPerIP caps open connections per client address; trusted
	// proxies are exempt (AGNES_MAX_CONNS_PER_IP).
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
	// PublicBodyBytes caps the body of methods anyone may call (sign-in,
	// bootstrap) (AGNES_PUBLIC_BODY_BYTES).
	PublicBodyBytes int64 `yaml:"public_body_bytes"`
}

// Tokens bound personal access tokens.
type Tokens struct {
	// MaxDays is the longest lifetime a token may be created with (AGNES_TOKEN_MAX_DAYS).
	MaxDays int `yaml:"max_days"`
	// AllowNonExpiring lets a token be created without an expiry (AGNES_TOKEN_ALLOW_NON_EXPIRING).
	AllowNonExpiring bool `yaml:"allow_non_expiring"`
}

// Log configures log/slog.
type Log struct {
	// Format is "text" or "json" (AGNES_LOG_FORMAT).
	Format string `yaml:"format"`
	// Level is debug, info, warn or error (AGNES_LOG_LEVEL).
	Level string `yaml:"level"`
}

// Query bounds the query engine.
type Query struct {
	// MaxRows caps the rows one query returns (AGNES_QUERY_MAX_ROWS).
	MaxRows int64 `yaml:"max_rows"`
	// MaxBytes caps the payload one query returns (AGNES_QUERY_MAX_BYTES).
	MaxBytes int64 `yaml:"max_bytes"`
	// Timeout is the wall-clock limit of one query (AGNES_QUERY_TIMEOUT).
	Timeout time.Duration `yaml:"timeout"`
	// PerUserConcurrency caps concurrent queries per user (AGNES_QUERY_PER_USER).
	PerUserConcurrency int `yaml:"per_user_concurrency"`
	// PerUserSlots caps the engine connections one user's queries hold at
	// once; more of their queries wait (AGNES_QUERY_PER_USER_SLOTS; 0: half the pool).
	PerUserSlots int `yaml:"per_user_slots"`
	// MaxQueue bounds the queries waiting for a connection (beyond: 429), and
	// MaxWait one query's wait (503) (AGNES_QUERY_MAX_QUEUE, AGNES_QUERY_MAX_WAIT).
	MaxQueue int           `yaml:"max_queue"`
	MaxWait  time.Duration `yaml:"max_wait"`
	// MemoryLimit is DuckDB's memory_limit, e.g. "8GB" (AGNES_QUERY_MEMORY_LIMIT;
	// "": half of the machine's memory, or of the cgroup's limit).
	MemoryLimit string `yaml:"memory_limit"`
	// Threads is DuckDB's threads (AGNES_QUERY_THREADS; 0: the CPUs).
	Threads int `yaml:"threads"`
	// MaxTempSize caps DuckDB's spill space under $DATA_DIR/analytics/tmp
	// (AGNES_QUERY_MAX_TEMP_SIZE).
	MaxTempSize string `yaml:"max_temp_size"`
	// AnswerMemory bounds the unary answers held for clients at once, all users
	// together, in bytes (AGNES_QUERY_ANSWER_MEMORY; 0: a quarter of the
	// machine's memory).
	AnswerMemory int64 `yaml:"answer_memory"`
	// MaxBuilderSize bounds one call of a list or string builder (list_resize,
	// repeat, lpad, range as a list, ...): elements or characters
	// (AGNES_QUERY_MAX_BUILDER_SIZE). DuckDB does not count these against its
	// memory limit, and computes 2,048 rows at a time.
	MaxBuilderSize int64 `yaml:"max_builder_size"`
	// RemoteMaxScanBytes refuses (400) a query pushed down to BigQuery (tables
	// of query_mode remote) whose dry run estimates more bytes; BigQuery also
	// enforces it as maximumBytesBilled (AGNES_QUERY_REMOTE_MAX_SCAN_BYTES; 0: no cap).
	RemoteMaxScanBytes int64 `yaml:"remote_max_scan_bytes"`
	// RemoteDailyBytes is what one user's pushed-down queries may scan per UTC
	// day, by their dry-run estimates; over it they get 429
	// (AGNES_QUERY_REMOTE_DAILY_BYTES; 0: no quota).
	RemoteDailyBytes int64 `yaml:"remote_daily_bytes"`
}

// Default is the embedded default a newcomer runs with.
func Default() Config {
	return Config{
		Addr:            "127.0.0.1:8000",
		DataDir:         "./data",
		RateLimit:       true,
		MaxBodyBytes:    10 << 20,
		MaxUploadBytes:  512 << 20,
		Demo:            true,
		ShutdownTimeout: 15 * time.Second,
		Limits: Limits{
			ReadHeaderTimeout: 10 * time.Second,
			BodyTimeout:       30 * time.Second,
			UploadTimeout:     30 * time.Minute,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			MaxConnsPerIP:     256,
			PublicBodyBytes:   64 << 10,
		},
		Log:    Log{Format: "text", Level: "info"},
		Tokens: Tokens{MaxDays: 365},
		Query: Query{
			MaxRows:            1_000_000,
			MaxBytes:           1 << 30,
			Timeout:            5 * time.Minute,
			PerUserConcurrency: 4,
			MaxBuilderSize:     100_000,
			MaxWait:            30 * time.Second,
			MaxTempSize:        "20GB",
			RemoteMaxScanBytes: 5 << 30,
			RemoteDailyBytes:   50 << 30,
		},
	}
}

// Load builds the config: defaults ← file (if path is set) ← environment.
// Flags are applied by the caller afterwards, then Validate.
func Load(path string, getenv func(string) string) (Config, error) {
	c := Default()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("read config: %w", err)
		}
		expanded := os.Expand(string(raw), getenv)
		dec := yaml.NewDecoder(strings.NewReader(expanded))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) { // an empty file means defaults
			return c, fmt.Errorf("parse %s: %w", path, err)
		}
	}
	return c, c.applyEnv(getenv)
}

func (c *Config) applyEnv(getenv func(string) string) error {
	var errs []error
	str := func(key string, dst *string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	boolean := func(key string, dst *bool) {
		if v := getenv(key); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
			}
			*dst = b
		}
	}
	integer := func(key string, dst *int64) {
		if v := getenv(key); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
			}
			*dst = n
		}
	}
	duration := func(key string, dst *time.Duration) {
		if v := getenv(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
			}
			*dst = d
		}
	}
	str("AGNES_ADDR", &c.Addr)
	str("DATA_DIR", &c.DataDir)
	if v := getenv("JWT_SECRET_KEY"); v != "" {
		c.JWTSecret = connectors.NewSecret(v)
	}
	str("AGNES_NODE_ID", &c.Node)
	duration("AGNES_JOB_RETENTION", &c.JobRetention)
	str("AGNES_PUBLIC_URL", &c.PublicURL)
	if v := getenv("AGNES_TRUSTED_PROXIES"); v != "" {
		c.TrustedProxies = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.TrustedProxies = append(c.TrustedProxies, p)
			}
		}
	}
	var trustXFF bool
	boolean("AGNES_TRUST_FORWARDED_FOR", &trustXFF)
	if trustXFF && len(c.TrustedProxies) == 0 {
		c.TrustedProxies = []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}
	}
	maxDays := int64(c.Tokens.MaxDays)
	integer("AGNES_TOKEN_MAX_DAYS", &maxDays)
	c.Tokens.MaxDays = int(maxDays)
	boolean("AGNES_TOKEN_ALLOW_NON_EXPIRING", &c.Tokens.AllowNonExpiring)
	duration("AGNES_READ_HEADER_TIMEOUT", &c.Limits.ReadHeaderTimeout)
	duration("AGNES_BODY_TIMEOUT", &c.Limits.BodyTimeout)
	duration("AGNES_UPLOAD_TIMEOUT", &c.Limits.UploadTimeout)
	duration("AGNES_IDLE_TIMEOUT", &c.Limits.IdleTimeout)
	var headerBytes, connsPerIP = int64(c.Limits.MaxHeaderBytes), int64(c.Limits.MaxConnsPerIP)
	integer("AGNES_MAX_HEADER_BYTES", &headerBytes)
	integer("AGNES_MAX_CONNS_PER_IP", &connsPerIP)
	c.Limits.MaxHeaderBytes, c.Limits.MaxConnsPerIP = int(headerBytes), int(connsPerIP)
	integer("AGNES_PUBLIC_BODY_BYTES", &c.Limits.PublicBodyBytes)
	boolean("AGNES_RATE_LIMIT", &c.RateLimit)
	integer("AGNES_MAX_BODY_BYTES", &c.MaxBodyBytes)
	integer("AGNES_MAX_UPLOAD_BYTES", &c.MaxUploadBytes)
	boolean("AGNES_DEMO", &c.Demo)
	duration("AGNES_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout)
	str("AGNES_LOG_FORMAT", &c.Log.Format)
	str("AGNES_LOG_LEVEL", &c.Log.Level)
	integer("AGNES_QUERY_MAX_ROWS", &c.Query.MaxRows)
	integer("AGNES_QUERY_MAX_BYTES", &c.Query.MaxBytes)
	integer("AGNES_QUERY_MAX_BUILDER_SIZE", &c.Query.MaxBuilderSize)
	integer("AGNES_QUERY_REMOTE_MAX_SCAN_BYTES", &c.Query.RemoteMaxScanBytes)
	integer("AGNES_QUERY_REMOTE_DAILY_BYTES", &c.Query.RemoteDailyBytes)
	slots, queue, threads := int64(c.Query.PerUserSlots), int64(c.Query.MaxQueue), int64(c.Query.Threads)
	integer("AGNES_QUERY_PER_USER_SLOTS", &slots)
	integer("AGNES_QUERY_MAX_QUEUE", &queue)
	integer("AGNES_QUERY_THREADS", &threads)
	c.Query.PerUserSlots, c.Query.MaxQueue, c.Query.Threads = int(slots), int(queue), int(threads)
	duration("AGNES_QUERY_MAX_WAIT", &c.Query.MaxWait)
	str("AGNES_QUERY_MEMORY_LIMIT", &c.Query.MemoryLimit)
	str("AGNES_QUERY_MAX_TEMP_SIZE", &c.Query.MaxTempSize)
	integer("AGNES_QUERY_ANSWER_MEMORY", &c.Query.AnswerMemory)
	duration("AGNES_QUERY_TIMEOUT", &c.Query.Timeout)
	perUser := int64(c.Query.PerUserConcurrency)
	integer("AGNES_QUERY_PER_USER", &perUser)
	c.Query.PerUserConcurrency = int(perUser)
	secret := func(key string, dst *Secret) {
		if v := getenv(key); v != "" {
			*dst = connectors.NewSecret(v)
		}
	}
	list := func(key string, dst *[]string) {
		if v := getenv(key); v != "" {
			*dst = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
		}
	}
	secret("SCHEDULER_API_TOKEN", &c.SchedulerToken)
	str("GOOGLE_CLIENT_ID", &c.OIDC.ClientID)
	secret("GOOGLE_CLIENT_SECRET", &c.OIDC.ClientSecret)
	str("AGNES_OIDC_ISSUER", &c.OIDC.Issuer)
	list("AGNES_OIDC_SCOPES", &c.OIDC.Scopes)
	list("AGNES_ALLOWED_DOMAINS", &c.OIDC.AllowedDomains)
	str("AGNES_GROUP_SYNC", &c.OIDC.Groups.Source)
	str("AGNES_GOOGLE_GROUP_PREFIX", &c.OIDC.Groups.Prefix)
	str("AGNES_GROUP_ADMIN_EMAIL", &c.OIDC.Groups.AdminGroup)
	str("AGNES_GROUP_EVERYONE_EMAIL", &c.OIDC.Groups.EveryoneGroup)
	str("AGNES_GOOGLE_DIRECTORY_URL", &c.OIDC.Groups.DirectoryURL)
	str("GOOGLE_ADMIN_SDK_CREDENTIALS", &c.OIDC.Groups.Credentials)
	str("GOOGLE_ADMIN_SDK_SUBJECT", &c.OIDC.Groups.Subject)
	str("SMTP_HOST", &c.SMTP.Host)
	port := int64(c.SMTP.Port)
	integer("SMTP_PORT", &port)
	c.SMTP.Port = int(port)
	str("SMTP_USER", &c.SMTP.User)
	secret("SMTP_PASSWORD", &c.SMTP.Password)
	str("SMTP_FROM", &c.SMTP.From)
	str("SMTP_TLS", &c.SMTP.TLS)
	return errors.Join(errs...)
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is required"))
	}
	if !c.JWTSecret.IsZero() && len(c.JWTSecret.Reveal()) < 32 {
		errs = append(errs, errors.New("jwt_secret (JWT_SECRET_KEY) must be at least 32 characters"))
	}
	if c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://") {
		errs = append(errs, fmt.Errorf("public_url %q must start with http:// or https://", c.PublicURL))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, errors.New("max_body_bytes must be at least 1024"))
	}
	if c.MaxUploadBytes < 1024 {
		errs = append(errs, errors.New("max_upload_bytes must be at least 1024"))
	}
	for _, p := range c.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			errs = append(errs, fmt.Errorf("trusted_proxies: %w", err))
		}
	}
	if c.Tokens.MaxDays < 1 || c.Tokens.MaxDays > 3650 {
		errs = append(errs, errors.New("tokens.max_days must be between 1 and 3650"))
	}
	l := c.Limits
	if l.ReadHeaderTimeout <= 0 || l.BodyTimeout <= 0 || l.UploadTimeout <= 0 || l.IdleTimeout <= 0 ||
		l.MaxHeaderBytes < 4096 || l.MaxConnsPerIP < 1 || l.PublicBodyBytes < 1024 {
		errs = append(errs, errors.New("limits: timeouts must be positive, max_header_bytes at least 4096, "+
			"max_conns_per_ip at least 1 and public_body_bytes at least 1024"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdown_timeout must be positive"))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format %q must be text or json", c.Log.Format))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level %q must be debug, info, warn or error", c.Log.Level))
	}
	for name, src := range c.Sources {
		if !extract.ValidName(name) {
			errs = append(errs, fmt.Errorf("sources: %q is not a valid source name (letters, digits, _; it names a folder and a SQL catalog)", name))
		}
		if t, _ := src["type"].(string); t == "" {
			errs = append(errs, fmt.Errorf("sources.%s: type is required", name))
		}
	}
	if c.Query.MaxRows < 1 || c.Query.MaxBytes < 1 || c.Query.Timeout <= 0 || c.Query.PerUserConcurrency < 1 || c.Query.MaxBuilderSize < 1 ||
		c.Query.PerUserSlots < 0 || c.Query.MaxQueue < 0 || c.Query.MaxWait <= 0 || c.Query.Threads < 0 || c.Query.AnswerMemory < 0 {
		errs = append(errs, errors.New("query limits must be positive"))
	}
	if c.Query.RemoteMaxScanBytes < 0 || c.Query.RemoteDailyBytes < 0 {
		errs = append(errs, errors.New("query.remote_max_scan_bytes and query.remote_daily_bytes must not be negative (0 turns them off)"))
	}
	if c.JobRetention < 0 {
		errs = append(errs, errors.New("job_retention (AGNES_JOB_RETENTION) must not be negative (0: 30 days)"))
	}
	if !c.SchedulerToken.IsZero() && len(c.SchedulerToken.Reveal()) < 32 {
		errs = append(errs, errors.New("scheduler_token (SCHEDULER_API_TOKEN) must be at least 32 characters"))
	}
	errs = append(errs, c.validateSignIn()...)
	return errors.Join(errs...)
}

// validateSignIn checks the OIDC and SMTP settings.
func (c Config) validateSignIn() []error {
	var errs []error
	o := c.OIDC
	if (o.ClientID == "") != o.ClientSecret.IsZero() {
		errs = append(errs, errors.New("oidc: client_id (GOOGLE_CLIENT_ID) and client_secret (GOOGLE_CLIENT_SECRET) go together"))
	}
	if o.Enabled() {
		if u, err := url.Parse(o.IssuerURL()); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("oidc: issuer %q (AGNES_OIDC_ISSUER) must be an http(s) URL", o.Issuer))
		}
		if !slices.Contains(o.ScopeList(), "openid") {
			errs = append(errs, errors.New("oidc: scopes (AGNES_OIDC_SCOPES) must include openid"))
		}
		if c.PublicURL == "" && !c.Loopback() {
			errs = append(errs, errors.New("oidc: public_url (AGNES_PUBLIC_URL) is required: the provider redirects to <public_url>/auth/google/callback"))
		}
	}
	for _, d := range o.AllowedDomains {
		if d == "" || strings.ContainsAny(d, "@/ ") {
			errs = append(errs, fmt.Errorf("oidc: allowed domain %q (AGNES_ALLOWED_DOMAINS) is not a domain", d))
		}
	}
	switch o.Groups.Source {
	case "", GroupsFromClaim:
	case GroupsFromDirectory:
		if o.Groups.Credentials == "" || o.Groups.Subject == "" {
			errs = append(errs, errors.New("oidc: group sync from the Google directory needs credentials (GOOGLE_ADMIN_SDK_CREDENTIALS) and subject (GOOGLE_ADMIN_SDK_SUBJECT)"))
		}
		if u, err := url.Parse(o.Groups.Directory()); err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("oidc: directory_url %q (AGNES_GOOGLE_DIRECTORY_URL) must be a URL", o.Groups.DirectoryURL))
		}
	default:
		errs = append(errs, fmt.Errorf("oidc: group sync %q (AGNES_GROUP_SYNC) must be claim or google_directory", o.Groups.Source))
	}
	s := c.SMTP
	switch s.TLSMode() {
	case "starttls", "tls", "none":
	default:
		errs = append(errs, fmt.Errorf("smtp: tls %q (SMTP_TLS) must be starttls, tls or none", s.TLS))
	}
	if s.Port < 0 || s.Port > 65535 {
		errs = append(errs, fmt.Errorf("smtp: port %d (SMTP_PORT) is out of range", s.Port))
	}
	if s.Host != "" {
		if _, err := mail.ParseAddress(s.From); err != nil {
			errs = append(errs, fmt.Errorf("smtp: from %q (SMTP_FROM) must be an email address", s.From))
		}
		if c.PublicURL == "" && !c.Loopback() {
			errs = append(errs, errors.New("smtp: public_url (AGNES_PUBLIC_URL) is required: mailed links point there"))
		}
	}
	return errs
}

// Loopback reports whether the server listens only on this machine.
func (c Config) Loopback() bool {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ParsePrefix reads a CIDR or a single address ("10.0.0.0/8", "192.0.2.7").
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a CIDR", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// SecureCookies reports whether cookies must carry the Secure flag.
func (c Config) SecureCookies() bool { return strings.HasPrefix(c.PublicURL, "https://") }

// StatePath is system.duckdb.
func (c Config) StatePath() string { return filepath.Join(c.DataDir, "state", "system.duckdb") }
