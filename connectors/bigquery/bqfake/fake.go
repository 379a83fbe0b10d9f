// Package bqfake is an in-process fake of the BigQuery REST API v2, faithful
// enough for the unmodified official client (cloud.google.com/go/bigquery)
// pointed at it with option.WithEndpoint (see NewClient). It follows
// shared/docs/reference/bigquery-rest.md §11:
//
//   - datasets.list/get, tables.list/get (legacy type names, int64 fields
//     as JSON strings), tabledata.list;
//   - jobs.query (synchronous; optionally answering jobComplete:false first,
//     see SetPendingPolls), jobs.getQueryResults with pageToken/startIndex
//     paging, jobs.insert (dry runs with totalBytesProcessed, and real query
//     jobs), jobs.get;
//   - errors in Google's JSON error shape (400 invalidQuery, 404 notFound,
//     injected ones, see Fail);
//   - a log of every request (Requests).
//
// The SQL a query carries really runs, on an in-memory DuckDB that holds the
// fake's tables (dataset = DuckDB schema), so filters, aggregates and joins
// pushed down to "BigQuery" give real results. Only what must be is
// translated (see translate): backtick paths, BigQuery string literals,
// # comments, @named parameters, the project prefix and the metadata views
// INFORMATION_SCHEMA.COLUMNS/TABLES, region-X.INFORMATION_SCHEMA.TABLE_STORAGE
// and __TABLES__ (§7), which the fake keeps as real tables filled from the
// tables it was given. Result types are DuckDB's mapped back to BigQuery's;
// GEOGRAPHY and BIGNUMERIC columns are stored as text and reported with
// their declared type when a result column has their name.
package bqfake

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/bigquery"
	_ "github.com/duckdb/duckdb-go/v2" // the database/sql driver of the fake's engine
	"google.golang.org/api/option"
)

// Table is a table (or view) of a fake dataset.
type Table struct {
	ID     string
	Type   string // TABLE (default), VIEW, MATERIALIZED_VIEW, EXTERNAL, SNAPSHOT
	Schema []Field
	// Rows hold one value per schema field: Go scalars (int64, float64,
	// bool, string, time.Time, []byte as UTF-8 text), []any for REPEATED,
	// map[string]any for RECORD, nil for NULL. NUMERIC, BIGNUMERIC,
	// INTERVAL and JSON values may be given as their text.
	Rows        [][]any
	NumBytes    int64 // reported by tables.get; default 100 bytes per row
	Description string
	// View is a VIEW's query (BigQuery SQL over the fake's tables); its
	// Schema and Rows are ignored and taken from the query.
	View           string
	PartitionField string   // timePartitioning DAY on this column
	Clustering     []string // clustering fields
	Labels         map[string]string
	Created        time.Time
}

// Fault is an error the fake answers instead of serving a request.
type Fault struct {
	Method string // "" = any
	// Path is a substring of the request path (without the /bigquery/v2
	// prefix), e.g. "/queries", "/datasets/sales/tables/orders".
	Path    string
	Code    int    // HTTP status, e.g. 403
	Reason  string // e.g. accessDenied, quotaExceeded, responseTooLarge
	Message string
	Times   int // how many requests it answers; 0 = 1
}

// Request is a request the fake received.
type Request struct {
	Method string
	Path   string // as received, with the /bigquery/v2 prefix if sent
	Query  map[string][]string
	Header http.Header
	Body   []byte
}

// JSON decodes the request body into v.
func (r Request) JSON(v any) error { return json.Unmarshal(r.Body, v) }

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	// Project is the project whose datasets the fake holds. Jobs are
	// accepted under any project (a billing project may differ).
	Project string

	srv *httptest.Server
	db  *sql.DB

	mu        sync.Mutex
	datasets  []*dataset
	jobs      map[string]*job
	requests  []Request
	faults    []*Fault
	estimate  func(query string) int64
	pageRows  int
	pending   int
	hintMu    sync.Mutex        // guards hints apart from mu: AddTable reads them while holding mu
	hints     map[string]string // lower-case column name → GEOGRAPHY/BIGNUMERIC
	location  string
	queryWait time.Duration
}

type dataset struct {
	id       string
	location string
	tables   []*Table
}

// New starts a fake holding project's datasets. Close it when done.
func New(project string) (*Server, error) {
	if project == "" {
		return nil, errors.New("bqfake: project is empty")
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, fmt.Errorf("bqfake: %w", err)
	}
	s := &Server{
		Project:  project,
		db:       db,
		jobs:     map[string]*job{},
		pageRows: 1000,
		hints:    map[string]string{},
		location: "US",
	}
	s.srv = httptest.NewServer(s.routes())
	return s, nil
}

// URL is the fake's base URL, for option.WithEndpoint.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the fake.
func (s *Server) Close() {
	s.srv.Close()
	_ = s.db.Close()
}

// ClientOptions point the official client at the fake, without credentials.
func (s *Server) ClientOptions() []option.ClientOption {
	return []option.ClientOption{option.WithEndpoint(s.srv.URL), option.WithoutAuthentication()}
}

// NewClient returns an official client for the fake's project.
func (s *Server) NewClient(ctx context.Context) (*bigquery.Client, error) {
	return bigquery.NewClient(ctx, s.Project, s.ClientOptions()...)
}

// SetPageRows sets how many rows a results page holds when the client
// does not ask for a size (BigQuery cuts pages at about 10 MB). Default 1000.
func (s *Server) SetPageRows(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageRows = max(n, 1)
}

// SetPendingPolls makes each following query answer jobComplete:false to
// jobs.query and to the next n-1 jobs.getQueryResults calls, as a slow
// query does. 0 (the default) answers at once.
func (s *Server) SetPendingPolls(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = n
}

// SetBytesEstimate sets the bytes a query processes, as dry runs report
// and maximumBytesBilled is checked against. By default a query processes
// the NumBytes of every fake table its text names as dataset.table.
func (s *Server) SetBytesEstimate(f func(query string) int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.estimate = f
}

// SetQueryLatency makes every jobs.query and jobs.getQueryResults answer
// wait d first, to stand for BigQuery's own time in benchmarks.
func (s *Server) SetQueryLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queryWait = d
}

// Fail makes the fake answer matching requests with f's error.
func (s *Server) Fail(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times <= 0 {
		f.Times = 1
	}
	s.faults = append(s.faults, &f)
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ResetRequests forgets the requests received so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// AddDataset creates a dataset in location (default US).
func (s *Server) AddDataset(id, location string) error {
	if location == "" {
		location = "US"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.findDataset(id) != nil {
		return fmt.Errorf("bqfake: dataset %s exists", id)
	}
	if _, err := s.db.Exec("CREATE SCHEMA " + quoteIdent(id)); err != nil {
		return fmt.Errorf("bqfake: dataset %s: %w", id, err)
	}
	s.datasets = append(s.datasets, &dataset{id: id, location: location})
	return s.refreshMetadata()
}

// AddTable creates a table (or view) in a dataset and fills it with its rows.
func (s *Server) AddTable(datasetID string, t Table) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ds := s.findDataset(datasetID)
	if ds == nil {
		return fmt.Errorf("bqfake: no dataset %s", datasetID)
	}
	if t.Type == "" {
		t.Type = "TABLE"
	}
	if t.Created.IsZero() {
		t.Created = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	name := quoteIdent(datasetID) + "." + quoteIdent(t.ID)
	if t.Type == "VIEW" {
		if err := s.addView(name, &t); err != nil {
			return fmt.Errorf("bqfake: view %s.%s: %w", datasetID, t.ID, err)
		}
	} else if err := s.addRows(name, t); err != nil {
		return fmt.Errorf("bqfake: table %s.%s: %w", datasetID, t.ID, err)
	}
	if t.NumBytes == 0 && t.Type != "VIEW" {
		t.NumBytes = 100 * int64(len(t.Rows))
	}
	s.hintMu.Lock()
	for _, f := range t.Schema {
		if f.Type == "GEOGRAPHY" || f.Type == "BIGNUMERIC" {
			s.hints[strings.ToLower(f.Name)] = f.Type
		}
	}
	s.hintMu.Unlock()
	ds.tables = append(ds.tables, &t)
	return s.refreshMetadata()
}

func (s *Server) addView(name string, t *Table) error {
	q, err := s.translate(t.View)
	if err != nil {
		return err
	}
	if _, err := s.db.Exec("CREATE VIEW " + name + " AS " + q); err != nil {
		return err
	}
	fields, err := s.describe(context.Background(), q)
	if err != nil {
		return err
	}
	t.Schema = fields
	return nil
}

// addRows creates the DuckDB table and loads the rows through JSON, which
// DuckDB casts to the columns' (nested) types.
func (s *Server) addRows(name string, t Table) error {
	if len(t.Schema) == 0 {
		return errors.New("no schema")
	}
	cols := make([]string, len(t.Schema))
	for i, f := range t.Schema {
		dt, err := duckType(f)
		if err != nil {
			return err
		}
		if f.Mode == "REQUIRED" {
			dt += " NOT NULL"
		}
		cols[i] = quoteIdent(f.Name) + " " + dt
	}
	if _, err := s.db.Exec("CREATE TABLE " + name + " (" + strings.Join(cols, ", ") + ")"); err != nil {
		return err
	}
	if len(t.Rows) == 0 {
		return nil
	}
	objs := make([]map[string]any, len(t.Rows))
	for i, r := range t.Rows {
		if len(r) != len(t.Schema) {
			return fmt.Errorf("row %d has %d values for %d fields", i, len(r), len(t.Schema))
		}
		obj := make(map[string]any, len(r))
		for j, f := range t.Schema {
			obj[f.Name] = jsonable(r[j])
		}
		objs[i] = obj
	}
	data, err := json.Marshal(objs)
	if err != nil {
		return err
	}
	rowType := make([]string, len(t.Schema))
	for i, f := range t.Schema {
		dt, _ := duckType(f)
		rowType[i] = quoteIdent(f.Name) + " " + dt
	}
	_, err = s.db.Exec("INSERT INTO "+name+" SELECT unnest(r) FROM (SELECT unnest(CAST(?::JSON AS STRUCT("+
		strings.Join(rowType, ", ")+")[])) AS r)", string(data))
	return err
}

// jsonable makes a row value encodable as JSON that DuckDB casts back:
// non-finite floats as their names, bytes as text, JSON values as their
// document.
func jsonable(v any) any {
	switch x := v.(type) {
	case float64:
		switch {
		case math.IsNaN(x):
			return "NaN"
		case math.IsInf(x, 1):
			return "Infinity"
		case math.IsInf(x, -1):
			return "-Infinity"
		}
	case []byte:
		return string(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	}
	return v
}

func (s *Server) findDataset(id string) *dataset {
	for _, d := range s.datasets {
		if d.id == id {
			return d
		}
	}
	return nil
}

func (s *Server) findTable(dsID, id string) (*dataset, *Table) {
	ds := s.findDataset(dsID)
	if ds == nil {
		return nil, nil
	}
	for _, t := range ds.tables {
		if t.ID == id {
			return ds, t
		}
	}
	return ds, nil
}

// bytesFor is the bytes a query processes (see SetBytesEstimate).
func (s *Server) bytesFor(query string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.estimate != nil {
		return s.estimate(query)
	}
	var n int64
	for _, ds := range s.datasets {
		for _, t := range ds.tables {
			if strings.Contains(query, ds.id+"."+t.ID) {
				n += t.NumBytes
			}
		}
	}
	return n
}
