// Package keboola is the Keboola batch-pull connector: it discovers the
// tables of a Keboola project through the Storage API and extracts them
// with async exports (export-async → job → file → sliced download), typed
// from the table's definition or column metadata and written to Parquet
// through DuckDB, with the full_refresh, incremental and partitioned
// strategies. It speaks the Storage API itself (no Go SDK exists); the
// protocol is docs/reference/keboola-storage-api.md, and kbcfake is the
// fake the tests run it against.
//
// A registered table names its Keboola table by TableSpec.Bucket (the
// bucket id, "in.c-crm") and TableSpec.SourceTable (the table name,
// "orders"): the Keboola table id is Bucket + "." + SourceTable. A
// SourceTable that already is a full table id is taken as it is. Discover
// suggests these fields for every table the token can read.
package keboola

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/agnesdata/agnes/connectors"
)

// Type is the connector's source type.
const Type = "keboola"

var (
	_ connectors.Factory   = Open
	_ connectors.Connector = (*Connector)(nil)
)

// Settings configure one Keboola source (one project on one stack). Zero
// durations and counts take the defaults below.
type Settings struct {
	// StackURL is the stack's base URL, e.g. https://connection.keboola.com.
	StackURL string `mapstructure:"stack_url"`
	// Token is a Storage API token of the project.
	Token connectors.Secret `mapstructure:"token"`
	// RequestTimeout bounds one API call (default 2m; the table list of a
	// large project is megabytes).
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	// DownloadTimeout bounds the download of one file or slice (default
	// 30m; Snowflake slices reach 200 MB).
	DownloadTimeout time.Duration `mapstructure:"download_timeout"`
	// ExportTimeout bounds the wait for one export job (default 30m: jobs
	// queue when the project runs its maximum of parallel jobs).
	ExportTimeout time.Duration `mapstructure:"export_timeout"`
	// PollInterval is the first wait between job polls (default 1s); it
	// grows by half each poll up to MaxPollInterval (default 10s).
	PollInterval    time.Duration `mapstructure:"poll_interval"`
	MaxPollInterval time.Duration `mapstructure:"max_poll_interval"`
	// Retries is how often a transient failure (transport error, 429,
	// 500, 502, 503, 504) is retried (default 5), the first after
	// RetryWait (default 500ms, doubling) unless Retry-After says otherwise.
	Retries   int           `mapstructure:"retries"`
	RetryWait time.Duration `mapstructure:"retry_wait"`
	// ParallelDownloads is how many slices download at once (default 4).
	ParallelDownloads int `mapstructure:"parallel_downloads"`
	// InitialLoadChunkDays splits the first load of a partitioned table
	// into exports of this many days of changes each (default 30).
	InitialLoadChunkDays int `mapstructure:"initial_load_chunk_days"`
	// FileType is what exports are asked for: csv (gzip, the default) or parquet.
	FileType string `mapstructure:"file_type"`
}

func (s *Settings) applyDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&s.RequestTimeout, 2*time.Minute)
	def(&s.DownloadTimeout, 30*time.Minute)
	def(&s.ExportTimeout, 30*time.Minute)
	def(&s.PollInterval, time.Second)
	def(&s.MaxPollInterval, 10*time.Second)
	def(&s.RetryWait, 500*time.Millisecond)
	if s.Retries == 0 {
		s.Retries = 5
	}
	if s.ParallelDownloads == 0 {
		s.ParallelDownloads = 4
	}
	if s.InitialLoadChunkDays == 0 {
		s.InitialLoadChunkDays = 30
	}
	if s.FileType == "" {
		s.FileType = "csv"
	}
}

// check validates the settings and returns the normalised stack URL.
func (s *Settings) check(name string) (string, error) {
	bad := func(format string, args ...any) error {
		return &connectors.InputError{Msg: fmt.Sprintf("source %s: ", name) + fmt.Sprintf(format, args...)}
	}
	raw := strings.TrimSpace(s.StackURL)
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return "", bad("stack_url is not set (e.g. https://connection.keboola.com)")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.User != nil:
		return "", bad("stack_url %q is not a stack URL such as https://connection.keboola.com", raw)
	case s.Token.IsZero() || strings.TrimSpace(s.Token.Reveal()) == "":
		return "", bad("token is not set")
	case strings.ContainsAny(s.Token.Reveal(), "\r\n"):
		return "", bad("token holds a line break")
	case s.RequestTimeout < 0 || s.DownloadTimeout < 0 || s.ExportTimeout < 0 || s.PollInterval < 0 || s.MaxPollInterval < 0 || s.RetryWait < 0:
		return "", bad("timeouts and intervals must not be negative")
	case s.Retries < 0 || s.ParallelDownloads < 0 || s.InitialLoadChunkDays < 0:
		return "", bad("retries, parallel_downloads and initial_load_chunk_days must not be negative")
	case s.FileType != "csv" && s.FileType != "parquet":
		return "", bad("file_type %q is neither csv nor parquet", s.FileType)
	}
	base := strings.TrimRight(u.String(), "/")
	return strings.TrimSuffix(base, "/v2/storage"), nil
}

// Connector is one Keboola source.
type Connector struct {
	name        string
	s           Settings
	api         *client
	gcsEndpoint string
	s3Endpoint  string
	now         func() time.Time
}

// Option changes how a Connector talks to the outside.
type Option func(*Connector)

// WithHTTPClient makes the connector use hc (its Transport, Timeout, ...)
// for the Storage API and file storage. Redirects never carry the Storage
// token to another host.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Connector) {
		cp := *hc
		cp.CheckRedirect = noTokenRedirects
		c.api.http = &cp
	}
}

// WithGCSEndpoint sets the GCS JSON API endpoint (default
// https://storage.googleapis.com, or STORAGE_EMULATOR_HOST when set).
func WithGCSEndpoint(u string) Option {
	return func(c *Connector) { c.gcsEndpoint = emulatorURL(u) }
}

// WithS3Endpoint sets an S3-compatible endpoint addressed path-style
// (default: AWS itself, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL when set).
func WithS3Endpoint(u string) Option {
	return func(c *Connector) { c.s3Endpoint = strings.TrimRight(u, "/") }
}

// WithClock sets the clock that dates the chunks of a partitioned table's
// first load.
func WithClock(now func() time.Time) Option {
	return func(c *Connector) { c.now = now }
}

// New returns the source name with settings s.
func New(name string, s Settings, opts ...Option) (*Connector, error) {
	s.applyDefaults()
	base, err := s.check(name)
	if err != nil {
		return nil, err
	}
	c := &Connector{name: name, s: s, now: time.Now, gcsEndpoint: "https://storage.googleapis.com",
		s3Endpoint: strings.TrimRight(cmpOr(os.Getenv("AWS_ENDPOINT_URL_S3"), os.Getenv("AWS_ENDPOINT_URL")), "/")}
	if host := os.Getenv("STORAGE_EMULATOR_HOST"); host != "" { // as Google's own clients do
		c.gcsEndpoint = emulatorURL(host)
	}
	c.api = &client{source: name, base: base + "/v2/storage", token: s.Token,
		http: &http.Client{CheckRedirect: noTokenRedirects}, timeout: s.RequestTimeout, retries: s.Retries, wait: s.RetryWait}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// emulatorURL turns STORAGE_EMULATOR_HOST ("localhost:4443" or a URL)
// into a base URL.
func emulatorURL(host string) string {
	if !strings.Contains(host, "://") {
		host = "http://" + host
	}
	return strings.TrimRight(host, "/")
}

// Open is the connectors.Factory of Keboola sources: settings stack_url,
// token and the optional ones of Settings.
func Open(name string, raw map[string]any) (connectors.Connector, error) {
	var s Settings
	if err := connectors.DecodeSettings(raw, &s); err != nil {
		return nil, &connectors.InputError{Msg: fmt.Sprintf("source %s: %v", name, err)}
	}
	return New(name, s)
}

// Type implements connectors.Connector.
func (c *Connector) Type() string { return Type }

// Verify checks that the stack answers and accepts the token; a refused
// token is an error wrapping ErrTokenRejected.
func (c *Connector) Verify(ctx context.Context) error {
	return c.api.verifyToken(ctx)
}

// Discover lists the tables the token can read.
func (c *Connector) Discover(ctx context.Context) ([]connectors.Discovered, error) {
	tables, err := c.api.tables(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]connectors.Discovered, 0, len(tables))
	for _, t := range tables {
		bucket, name, ok := splitTableID(t.ID)
		if !ok {
			continue
		}
		out = append(out, connectors.Discovered{
			ID: suggestID(t.ID), Name: cmpOr(t.DisplayName, name), Bucket: bucket, SourceTable: name,
			Description: t.description(), Columns: t.Columns, Rows: t.RowsCount, SizeBytes: t.DataSizeBytes,
			PrimaryKey: t.PrimaryKey,
		})
	}
	return out, nil
}

// suggestID is the registry id of a Keboola table id: its slug
// (in.c-crm.orders → in_c_crm_orders), shortened with a hash suffix when
// longer than an id may be.
func suggestID(tableID string) string {
	if id, err := connectors.TableID(tableID); err == nil {
		return id
	}
	slug := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, tableID)
	var h uint32 = 2166136261 // FNV-1a keeps the shortened ids apart
	for i := 0; i < len(tableID); i++ {
		h = (h ^ uint32(tableID[i])) * 16777619
	}
	return fmt.Sprintf("%.55s_%08x", slug, h)
}

// tableID is the Keboola table id a spec names; a spec that names none is
// an error wrapping connectors.ErrNotFound.
func (c *Connector) tableID(spec connectors.TableSpec) (string, error) {
	id := spec.SourceTable
	if spec.Bucket != "" && !strings.HasPrefix(id, spec.Bucket+".") {
		id = spec.Bucket + "." + id
	}
	if _, _, ok := splitTableID(id); !ok {
		return "", fmt.Errorf("source %s: table %s: %q is not a Keboola table id (bucket %q + source_table %q): %w",
			c.name, spec.ID, id, spec.Bucket, spec.SourceTable, connectors.ErrNotFound)
	}
	return id, nil
}

// SetColumnDescription writes a column's description to Keboola
// (KBC.description metadata of the provider "user"), so a description
// edited in Agnes shows in Keboola too.
func (c *Connector) SetColumnDescription(ctx context.Context, tableID, column, text string) error {
	if _, _, ok := splitTableID(tableID); !ok {
		return &connectors.InputError{Msg: fmt.Sprintf("%q is not a Keboola table id (e.g. in.c-crm.orders)", tableID)}
	}
	if !columnRE.MatchString(column) {
		return &connectors.InputError{Msg: fmt.Sprintf("%q is not a Keboola column name", column)}
	}
	err := c.api.setColumnMetadata(ctx, tableID, column, "user", map[string]string{"KBC.description": text})
	return tableError(err, tableID+"."+column)
}

// columnRE is what a Keboola column name may hold.
var columnRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// tableError marks an answer that a table (or column) does not exist or
// is outside the token's buckets as connectors.ErrNotFound.
func tableError(err error, tableID string) error {
	var ae *APIError
	if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusForbidden) {
		return &notFoundError{ae, tableID}
	}
	return err
}

type notFoundError struct {
	*APIError
	table string
}

func (e *notFoundError) Error() string {
	if e.Status == http.StatusForbidden {
		return fmt.Sprintf("source %s: the token may not read %s (its bucket is not among the token's buckets): %s",
			e.Source, e.table, e.detail())
	}
	return fmt.Sprintf("source %s: Keboola has no %s: %s", e.Source, e.table, e.detail())
}

// PublicMessage implements connectors.PublicError.
func (e *notFoundError) PublicMessage() string { return e.Error() }

func (e *notFoundError) Unwrap() []error { return []error{connectors.ErrNotFound, e.APIError} }

// EnvSettings returns the raw settings (for Open) of the default instance the
// Python system's way, from KEBOOLA_STACK_URL and KEBOOLA_STORAGE_TOKEN; nil
// when either is unset.
func EnvSettings(getenv func(string) string) map[string]any {
	url, token := strings.TrimSpace(getenv("KEBOOLA_STACK_URL")), strings.TrimSpace(getenv("KEBOOLA_STORAGE_TOKEN"))
	if url == "" || token == "" {
		return nil
	}
	return map[string]any{"stack_url": url, "token": token}
}
