// Package kbcfake is a faithful fake of the slice of the Keboola Storage API
// an extractor uses (docs/reference/keboola-storage-api.md §11): token
// verification, buckets and tables with their metadata, async table export
// → job → file detail with federated credentials → a sliced manifest whose
// gzip CSV (or Parquet) slices are served by fake GCS (JSON API), S3
// (SigV4-checked, path style) and Azure Blob (SAS) endpoints on their own
// loopback servers, and column-metadata writes. It speaks HTTP exactly as
// the reference describes (paths, JSON shapes with +0200 timestamps and
// mixed id types, error bodies, status codes), records every request, and
// can inject the faults a client must survive: a 503 maintenance answer
// with Retry-After while a job is polled, a job that ends in error, an
// unknown token, an unknown table, a table outside the token's buckets.
//
// Tests load tables with AddTable, point a client at URL (and the cloud
// endpoints: GCSEndpoint for STORAGE_EMULATOR_HOST, S3Endpoint for
// AWS_ENDPOINT_URL; Azure needs no override) and inspect Requests and
// Exports afterwards.
package kbcfake

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Null is a value of a typed table that is SQL NULL: exported as an empty
// unquoted field, where an empty string is "".
const Null = "\x00NULL"

// Cloud providers a project's file storage can be on.
const (
	GCP   = "gcp"
	AWS   = "aws"
	Azure = "azure"
)

// Table is a Storage table as a test loads it.
type Table struct {
	ID          string // "in.c-crm.orders": bucket id + "." + name
	Columns     []string
	PrimaryKey  []string
	Rows        []Row
	Description string // table metadata KBC.description
	// ColumnMetadata is each column's metadata (KBC.datatype.basetype,
	// KBC.description, ...) as the API lists it.
	ColumnMetadata map[string][]Metadata
	// Definition makes the table typed (isTyped, definition.columns).
	Definition []ColumnDefinition
	// Generate, with GeneratedRows, produces the rows instead of Rows, so
	// benchmarks can serve millions of rows without holding them.
	Generate      func(i int) Row
	GeneratedRows int
	// AliasOf makes the table an alias of another table: its rows and
	// columns are the source's, its own columnMetadata is [] and the
	// source's is under sourceTable.
	AliasOf string
	Created time.Time // default: when it was added
}

// Row is one row: its values in column order and its _timestamp, the time
// Keboola last imported it (what changedSince compares).
type Row struct {
	Values  []string
	Changed time.Time
}

// Metadata is one metadata entry.
type Metadata struct {
	Key, Value, Provider string
}

// BaseType is KBC.datatype.basetype metadata from provider.
func BaseType(provider, basetype string) Metadata {
	return Metadata{Key: "KBC.datatype.basetype", Value: basetype, Provider: provider}
}

// ColumnDefinition is a column of a typed table.
type ColumnDefinition struct {
	Name     string
	Type     string // backend type, e.g. NUMBER, VARCHAR, TIMESTAMP_NTZ
	Length   string // e.g. "38,2"
	Nullable bool
	BaseType string // STRING INTEGER NUMERIC FLOAT BOOLEAN DATE TIMESTAMP
}

// Request is one request any of the fake's servers received.
type Request struct {
	Server string // "storage", "gcs", "s3" or "azure"
	Method string
	Path   string // as sent (escaped)
	Query  url.Values
	Header http.Header
	Body   []byte
}

// Export is one export-async request: its raw body and what it decoded to.
type Export struct {
	TableID     string
	ContentType string
	Body        []byte
	Params      ExportParams
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	api, gcs, s3, azure *httptest.Server

	mu       sync.Mutex
	tokens   map[string]*token
	master   string
	provider string
	tables   map[string]*tableState
	order    []string // table ids in the order added
	jobs     map[int64]*job
	files    map[int64]*file
	cache    map[string]int64 // export cache key → file id
	nextID   int64
	log      []Request
	exports  []Export
	now      func() time.Time
	zone     *time.Location
	sliced   bool
	perSlice int
	ready    int
	maint    int // job polls still to answer 503
	failNext *JobError
	inject   []int // statuses the next API requests answer with
	expire   bool  // the next authorised slice download finds its credentials expired
	noEmpty  bool  // a sliced export without rows has one empty slice, not entries: []
}

type token struct {
	id      string
	buckets []string // nil: every bucket
}

type tableState struct {
	Table
	version int // bumped on every change; part of the export cache key
	meta    []metadataEntry
	colMeta map[string][]metadataEntry
}

type metadataEntry struct {
	ID        string `json:"id"`
	Key       string `json:"key"`
	Value     string `json:"value"`
	Provider  string `json:"provider"`
	Timestamp string `json:"timestamp"`
}

// JobError is how an export job fails.
type JobError struct {
	Code, Message, ExceptionID string
}

// New starts the fake's servers; Close stops them.
func New() *Server {
	s := &Server{
		tokens: map[string]*token{}, provider: GCP, tables: map[string]*tableState{}, jobs: map[int64]*job{},
		files: map[int64]*file{}, cache: map[string]int64{}, nextID: 1000, now: time.Now,
		zone: time.FixedZone("", 2*3600), sliced: true, perSlice: 2, ready: 3,
	}
	s.master = s.NewToken()
	s.api = httptest.NewServer(s.record("storage", s.apiMux()))
	s.gcs = httptest.NewServer(s.record("gcs", http.HandlerFunc(s.serveGCS)))
	s.s3 = httptest.NewServer(s.record("s3", http.HandlerFunc(s.serveS3)))
	s.azure = httptest.NewServer(s.record("azure", http.HandlerFunc(s.serveAzure)))
	return s
}

// Close stops every server.
func (s *Server) Close() {
	for _, srv := range []*httptest.Server{s.api, s.gcs, s.s3, s.azure} {
		srv.Close()
	}
}

// URL is the stack URL (the Storage API is under /v2/storage).
func (s *Server) URL() string { return s.api.URL }

// Token is a token that can read every bucket.
func (s *Server) Token() string { return s.master }

// GCSEndpoint is the fake GCS JSON API's host, the value of
// STORAGE_EMULATOR_HOST.
func (s *Server) GCSEndpoint() string { return s.gcs.URL }

// S3Endpoint is the fake S3's URL (path-style buckets), the value of
// AWS_ENDPOINT_URL.
func (s *Server) S3Endpoint() string { return s.s3.URL }

// NewToken adds a token that can read only the given buckets (every bucket
// when none is given) and returns it.
func (s *Server) NewToken(buckets ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b [12]byte
	_, _ = rand.Read(b[:])
	t := fmt.Sprintf("%d-%d-%s", 1234, len(s.tokens)+48211, hex.EncodeToString(b[:]))
	s.tokens[t] = &token{id: fmt.Sprint(len(s.tokens) + 48211), buckets: buckets}
	return t
}

// SetProvider sets the project's file storage: GCP (default), AWS or Azure.
func (s *Server) SetProvider(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.provider = p
}

// SetSliced chooses sliced exports (default, as Snowflake does) or one file.
func (s *Server) SetSliced(sliced bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sliced = sliced
}

// SetEmptyManifest chooses what a sliced export without rows looks like: a
// manifest with entries: [] (true, the default, as seen from Snowflake)
// or one empty slice.
func (s *Server) SetEmptyManifest(empty bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noEmpty = !empty
}

// SetRowsPerSlice sets how many rows a slice holds (default 2).
func (s *Server) SetRowsPerSlice(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perSlice = max(n, 1)
}

// SetReadyAfterPolls sets on which poll an export job ends (default 3:
// waiting, processing, then success).
func (s *Server) SetReadyAfterPolls(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = max(n, 1)
}

// SetNow sets the fake's clock (job times, table dates, metadata).
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// MaintenanceOnNextPolls makes the next n job polls answer 503 with
// Retry-After: 1 and the maintenance body.
func (s *Server) MaintenanceOnNextPolls(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maint = n
}

// FailNextExport makes the next export job end in status error.
func (s *Server) FailNextExport(e JobError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = &e
}

// FailNextRequests makes the next n Storage API requests (any route)
// answer status with the API's error body.
func (s *Server) FailNextRequests(status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.inject = append(s.inject, status)
	}
}

// ExpireCredentialsOnce makes the next slice download that is correctly
// authorised fail as if its federated credentials had expired (401 GCS,
// 403 S3 and Azure) and replaces the file's credentials, so only a fresh
// file detail gets through.
func (s *Server) ExpireCredentialsOnce() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire = true
}

// AddTable adds (or replaces) a table; its bucket exists from then on.
func (s *Server) AddTable(t Table) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.Count(t.ID, ".") != 2 {
		panic("kbcfake: table id " + t.ID + " is not stage.bucket.table")
	}
	if t.Created.IsZero() {
		t.Created = s.now()
	}
	st := &tableState{Table: t, colMeta: map[string][]metadataEntry{}}
	if t.Description != "" {
		st.meta = append(st.meta, s.entry("user", "KBC.description", t.Description))
	}
	for col, list := range t.ColumnMetadata {
		for _, m := range list {
			st.colMeta[col] = append(st.colMeta[col], s.entry(m.Provider, m.Key, m.Value))
		}
	}
	if old, ok := s.tables[t.ID]; ok {
		st.version = old.version + 1
	} else {
		s.order = append(s.order, t.ID)
	}
	s.tables[t.ID] = st
}

// Update changes a table in place (rows, columns, ...).
func (s *Server) Update(id string, change func(t *Table)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.tables[id]
	if !ok {
		panic("kbcfake: no table " + id)
	}
	change(&st.Table)
	st.version++
}

// ColumnMetadata returns a column's metadata as the API holds it.
func (s *Server) ColumnMetadata(tableID, column string) []Metadata {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Metadata
	if st, ok := s.tables[tableID]; ok {
		for _, e := range st.colMeta[column] {
			out = append(out, Metadata{Key: e.Key, Value: e.Value, Provider: e.Provider})
		}
	}
	return out
}

// Requests returns every request received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// Exports returns every export-async request received so far.
func (s *Server) Exports() []Export {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.exports)
}

// Polls returns how many times a job was polled.
func (s *Server) Polls(jobID int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.jobs[jobID]; ok {
		return j.polls
	}
	return 0
}

// LastFileSlices returns the slices (file bytes) of the most recent
// export file, e.g. for a benchmark to convert the same files locally.
func (s *Server) LastFileSlices() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last *file
	for _, f := range s.files {
		if last == nil || f.id > last.id {
			last = f
		}
	}
	if last == nil {
		return nil
	}
	return slices.Clone(last.slices)
}

// ResetLog forgets the requests and exports received so far.
func (s *Server) ResetLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log, s.exports = nil, nil
}

func (s *Server) entry(provider, key, value string) metadataEntry {
	s.nextID++
	return metadataEntry{ID: fmt.Sprint(s.nextID), Key: key, Value: value, Provider: provider, Timestamp: s.stamp(s.now())}
}

// stamp renders a time the way the Storage API does: ISO 8601 with a
// +0200-style offset (not RFC 3339).
func (s *Server) stamp(t time.Time) string { return t.In(s.zone).Format("2006-01-02T15:04:05-0700") }

// record logs every request, body included, before serving it.
func (s *Server) record(server string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.log = append(s.log, Request{Server: server, Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.Query(),
			Header: r.Header.Clone(), Body: body})
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}
