package bqfake

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// apiError is an error in Google's JSON error shape.
type apiError struct {
	Code    int
	Reason  string
	Message string
}

func (e *apiError) Error() string { return e.Message }

func invalidQuery(format string, args ...any) *apiError {
	return &apiError{Code: http.StatusBadRequest, Reason: "invalidQuery", Message: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{Code: http.StatusNotFound, Reason: "notFound", Message: fmt.Sprintf(format, args...)}
}

var statusNames = map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
	404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Code, map[string]any{"error": map[string]any{
		"code": e.Code, "message": e.Message, "status": statusNames[e.Code],
		"errors": []any{map[string]any{"message": e.Message, "domain": "global", "reason": e.Reason}},
	}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// handler is a route: it returns the response body or an error.
type handler func(r *http.Request) (any, error)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for pattern, h := range map[string]handler{
		"GET /projects/{p}/datasets":                     s.listDatasets,
		"GET /projects/{p}/datasets/{d}":                 s.getDataset,
		"GET /projects/{p}/datasets/{d}/tables":          s.listTables,
		"GET /projects/{p}/datasets/{d}/tables/{t}":      s.getTable,
		"GET /projects/{p}/datasets/{d}/tables/{t}/data": s.listTableData,
		"POST /projects/{p}/jobs":                        s.insertJob,
		"GET /projects/{p}/jobs/{j}":                     s.getJob,
		"POST /projects/{p}/queries":                     s.query,
		"GET /projects/{p}/queries/{j}":                  s.getQueryResults,
	} {
		method, p, _ := strings.Cut(pattern, " ")
		for _, prefix := range []string{"", "/bigquery/v2"} {
			mux.Handle(method+" "+prefix+p, s.serve(h))
		}
	}
	mux.Handle("/", s.serve(func(r *http.Request) (any, error) {
		return nil, notFound("Not found: %s %s is not an endpoint of the fake", r.Method, r.URL.Path)
	}))
	return mux
}

// serve records the request, answers injected faults and writes h's result.
func (s *Server) serve(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(),
			Header: r.Header.Clone(), Body: body})
		fault := s.takeFault(r)
		s.mu.Unlock()
		if fault != nil {
			writeError(w, fault)
			return
		}
		out, err := h(r)
		if err != nil {
			var e *apiError
			if !errors.As(err, &e) {
				e = &apiError{Code: http.StatusInternalServerError, Reason: "internalError", Message: err.Error()}
			}
			writeError(w, e)
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func (s *Server) takeFault(r *http.Request) *apiError {
	p := strings.TrimPrefix(r.URL.Path, "/bigquery/v2")
	for i, f := range s.faults {
		if (f.Method == "" || f.Method == r.Method) && strings.Contains(p, f.Path) {
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			return &apiError{Code: f.Code, Reason: f.Reason, Message: f.Message}
		}
	}
	return nil
}

func (s *Server) checkProject(r *http.Request) error {
	if p := r.PathValue("p"); p != s.Project {
		return notFound("Not found: Project %s", p)
	}
	return nil
}

// page cuts items by maxResults/pageToken (an offset) of a list call.
func page[T any](r *http.Request, items []T) ([]T, string) {
	start, _ := strconv.Atoi(r.URL.Query().Get("pageToken"))
	start = min(max(start, 0), len(items))
	n := len(items) - start
	if m, err := strconv.Atoi(r.URL.Query().Get("maxResults")); err == nil && m > 0 {
		n = min(n, m)
	}
	next := ""
	if start+n < len(items) {
		next = strconv.Itoa(start + n)
	}
	return items[start : start+n], next
}

func (s *Server) listDatasets(r *http.Request) (any, error) {
	if err := s.checkProject(r); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	list, next := page(r, s.datasets)
	out := map[string]any{"kind": "bigquery#datasetList", "etag": "fake"}
	var items []any
	for _, d := range list {
		items = append(items, map[string]any{"kind": "bigquery#dataset", "id": s.Project + ":" + d.id,
			"datasetReference": map[string]any{"projectId": s.Project, "datasetId": d.id}, "location": d.location})
	}
	if items != nil {
		out["datasets"] = items
	}
	if next != "" {
		out["nextPageToken"] = next
	}
	return out, nil
}

func (s *Server) getDataset(r *http.Request) (any, error) {
	if err := s.checkProject(r); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.findDataset(r.PathValue("d"))
	if d == nil {
		return nil, notFound("Not found: Dataset %s:%s", s.Project, r.PathValue("d"))
	}
	return map[string]any{"kind": "bigquery#dataset", "id": s.Project + ":" + d.id, "location": d.location,
		"datasetReference": map[string]any{"projectId": s.Project, "datasetId": d.id},
		"creationTime":     "1700000000000"}, nil
}

func (s *Server) listTables(r *http.Request) (any, error) {
	if err := s.checkProject(r); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.findDataset(r.PathValue("d"))
	if d == nil {
		return nil, notFound("Not found: Dataset %s:%s", s.Project, r.PathValue("d"))
	}
	list, next := page(r, d.tables)
	out := map[string]any{"kind": "bigquery#tableList", "etag": "fake", "totalItems": len(d.tables)} // int32: bare
	var items []any
	for _, t := range list {
		item := s.tableJSON(d, t)
		for _, k := range []string{"schema", "numRows", "numBytes", "lastModifiedTime", "location", "description", "etag"} {
			delete(item, k) // list items carry no schema or storage numbers
		}
		items = append(items, item)
	}
	if items != nil {
		out["tables"] = items
	}
	if next != "" {
		out["nextPageToken"] = next
	}
	return out, nil
}

func (s *Server) getTable(r *http.Request) (any, error) {
	if err := s.checkProject(r); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, t := s.findTable(r.PathValue("d"), r.PathValue("t"))
	if t == nil {
		return nil, notFound("Not found: Table %s:%s.%s", s.Project, r.PathValue("d"), r.PathValue("t"))
	}
	return s.tableJSON(d, t), nil
}

func (s *Server) tableJSON(d *dataset, t *Table) map[string]any {
	created := strconv.FormatInt(t.Created.UnixMilli(), 10)
	m := map[string]any{
		"kind": "bigquery#table", "id": s.Project + ":" + d.id + "." + t.ID, "etag": "fake",
		"tableReference": map[string]any{"projectId": s.Project, "datasetId": d.id, "tableId": t.ID},
		"type":           t.Type, "location": d.location, "creationTime": created, "lastModifiedTime": created,
		"schema": schemaJSON(t.Schema),
	}
	if t.Type != "VIEW" {
		m["numRows"] = strconv.Itoa(len(t.Rows)) // int64: strings on the wire
		m["numBytes"] = strconv.FormatInt(t.NumBytes, 10)
	} else {
		m["view"] = map[string]any{"query": t.View, "useLegacySql": false}
	}
	if t.Description != "" {
		m["description"] = t.Description
	}
	if t.PartitionField != "" {
		m["timePartitioning"] = map[string]any{"type": "DAY", "field": t.PartitionField}
	}
	if len(t.Clustering) > 0 {
		m["clustering"] = map[string]any{"fields": t.Clustering}
	}
	if len(t.Labels) > 0 {
		m["labels"] = t.Labels
	}
	return m
}

func (s *Server) listTableData(r *http.Request) (any, error) {
	if err := s.checkProject(r); err != nil {
		return nil, err
	}
	s.mu.Lock()
	d, t := s.findTable(r.PathValue("d"), r.PathValue("t"))
	s.mu.Unlock()
	if t == nil {
		return nil, notFound("Not found: Table %s:%s.%s", s.Project, r.PathValue("d"), r.PathValue("t"))
	}
	if t.Type == "VIEW" {
		return nil, &apiError{Code: 400, Reason: "invalid", Message: "Cannot list a table of type VIEW."}
	}
	rows, err := s.fetch(r.Context(), "SELECT * FROM "+quoteIdent(d.id)+"."+quoteIdent(t.ID), nil, t.Schema)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"kind": "bigquery#tableDataList", "etag": "fake", "totalRows": strconv.Itoa(len(rows))}
	s.addPage(out, r, rows, -1)
	return out, nil
}

// queryRequest is the body of jobs.query and the query part of jobs.insert.
type queryRequest struct {
	Query              string           `json:"query"`
	UseLegacySQL       *bool            `json:"useLegacySql"`
	DryRun             bool             `json:"dryRun"`
	MaximumBytesBilled string           `json:"maximumBytesBilled"`
	MaxResults         *int             `json:"maxResults"`
	Location           string           `json:"location"`
	QueryParameters    []queryParameter `json:"queryParameters"`
	DefaultDataset     *struct {
		DatasetID string `json:"datasetId"`
	} `json:"defaultDataset"`
}

type queryParameter struct {
	Name          string `json:"name"`
	ParameterType struct {
		Type      string `json:"type"`
		ArrayType *struct {
			Type string `json:"type"`
		} `json:"arrayType"`
	} `json:"parameterType"`
	ParameterValue struct {
		Value       *string `json:"value"`
		ArrayValues []struct {
			Value *string `json:"value"`
		} `json:"arrayValues"`
	} `json:"parameterValue"`
}

// job is a query the fake ran (or is pretending to run).
type job struct {
	id, project, location string
	config                map[string]any
	fields                []Field
	rows                  [][]any // encoded cells
	bytes                 int64
	pending               int
	err                   *apiError
	created               time.Time
}

func (s *Server) query(r *http.Request) (any, error) {
	body, _ := io.ReadAll(r.Body)
	var req queryRequest
	var raw map[string]any
	if err := errors.Join(json.Unmarshal(body, &req), json.Unmarshal(body, &raw)); err != nil {
		return nil, &apiError{Code: 400, Reason: "invalid", Message: "Invalid JSON payload: " + err.Error()}
	}
	if req.DryRun {
		fields, bytes, err := s.dryRun(r.Context(), req)
		if err != nil {
			return nil, err
		}
		return map[string]any{"kind": "bigquery#queryResponse", "jobComplete": true, "schema": schemaJSON(fields),
			"totalBytesProcessed": strconv.FormatInt(bytes, 10), "cacheHit": false}, nil
	}
	j, err := s.runJob(r.Context(), r.PathValue("p"), "", req, map[string]any{"query": raw})
	if err != nil {
		return nil, err
	}
	s.wait()
	if j.err != nil {
		return nil, j.err
	}
	out := map[string]any{"kind": "bigquery#queryResponse", "queryId": j.id, "jobReference": j.ref()}
	if j.pending > 0 {
		s.mu.Lock()
		j.pending--
		s.mu.Unlock()
		out["jobComplete"] = false
		return out, nil
	}
	j.results(out)
	size := -1
	if req.MaxResults != nil {
		size = *req.MaxResults
	}
	s.addPage(out, r, j.rows, size)
	return out, nil
}

func (j *job) ref() map[string]any {
	return map[string]any{"projectId": j.project, "jobId": j.id, "location": j.location}
}

func (j *job) results(out map[string]any) {
	out["jobComplete"] = true
	out["schema"] = schemaJSON(j.fields)
	out["totalRows"] = strconv.Itoa(len(j.rows))
	out["totalBytesProcessed"] = strconv.FormatInt(j.bytes, 10)
	out["cacheHit"] = false
}

func (s *Server) getQueryResults(r *http.Request) (any, error) {
	s.mu.Lock()
	j := s.jobs[r.PathValue("j")]
	s.mu.Unlock()
	if j == nil {
		return nil, notFound("Not found: Job %s:%s", r.PathValue("p"), r.PathValue("j"))
	}
	s.wait()
	if j.err != nil {
		return nil, j.err
	}
	out := map[string]any{"kind": "bigquery#getQueryResultsResponse", "etag": "fake", "jobReference": j.ref()}
	s.mu.Lock()
	pending := j.pending > 0
	if pending {
		j.pending--
	}
	s.mu.Unlock()
	if pending {
		out["jobComplete"] = false
		return out, nil
	}
	j.results(out)
	s.addPage(out, r, j.rows, -1)
	return out, nil
}

// addPage puts one page of rows into out: from pageToken ("o:N") or
// startIndex, up to maxResults (the request's, else size, else the fake's
// page size), with a pageToken when more rows follow.
func (s *Server) addPage(out map[string]any, r *http.Request, rows [][]any, size int) {
	q := r.URL.Query()
	start := 0
	if tok := q.Get("pageToken"); tok != "" {
		start, _ = strconv.Atoi(strings.TrimPrefix(tok, "o:"))
	} else if si := q.Get("startIndex"); si != "" {
		start, _ = strconv.Atoi(si)
	}
	if m := q.Get("maxResults"); m != "" {
		size, _ = strconv.Atoi(m)
	}
	if size < 0 {
		s.mu.Lock()
		size = s.pageRows
		s.mu.Unlock()
	}
	start = min(max(start, 0), len(rows))
	end := min(start+size, len(rows))
	if end > start {
		list := make([]any, 0, end-start)
		for _, row := range rows[start:end] {
			list = append(list, map[string]any{"f": row})
		}
		out["rows"] = list
	}
	if end < len(rows) && size > 0 {
		out["pageToken"] = "o:" + strconv.Itoa(end)
	}
}

func (s *Server) wait() {
	s.mu.Lock()
	d := s.queryWait
	s.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
}

func (s *Server) insertJob(r *http.Request) (any, error) {
	var body struct {
		JobReference struct {
			JobID    string `json:"jobId"`
			Location string `json:"location"`
		} `json:"jobReference"`
		Configuration struct {
			DryRun bool          `json:"dryRun"`
			Query  *queryRequest `json:"query"`
		} `json:"configuration"`
	}
	raw, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, &apiError{Code: 400, Reason: "invalid", Message: "Invalid JSON payload: " + err.Error()}
	}
	var rawMap map[string]any
	_ = json.Unmarshal(raw, &rawMap)
	config, _ := rawMap["configuration"].(map[string]any)
	if config == nil || body.Configuration.Query == nil {
		return nil, &apiError{Code: 400, Reason: "invalid", Message: "The fake runs query jobs only"}
	}
	config["jobType"] = "QUERY"
	req := *body.Configuration.Query
	req.Location = body.JobReference.Location
	if body.Configuration.DryRun {
		fields, bytes, err := s.dryRun(r.Context(), req)
		if err != nil {
			return nil, err
		}
		j := &job{id: body.JobReference.JobID, project: r.PathValue("p"), location: s.jobLocation(req),
			config: config, fields: fields, bytes: bytes, created: time.Now()}
		return j.resource(), nil // a dry run creates no job
	}
	j, err := s.runJob(r.Context(), r.PathValue("p"), body.JobReference.JobID, req, config)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return j.resource(), nil
}

func (s *Server) getJob(r *http.Request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock() // resource reads j.pending, which polls change
	j := s.jobs[r.PathValue("j")]
	if j == nil {
		return nil, notFound("Not found: Job %s:%s", r.PathValue("p"), r.PathValue("j"))
	}
	return j.resource(), nil
}

func (j *job) resource() map[string]any {
	state := "DONE"
	if j.pending > 0 {
		state = "RUNNING"
	}
	status := map[string]any{"state": state}
	if j.err != nil {
		e := map[string]any{"reason": j.err.Reason, "message": j.err.Message}
		status["errorResult"], status["errors"] = e, []any{e}
	}
	ms := strconv.FormatInt(j.created.UnixMilli(), 10)
	bytes := strconv.FormatInt(j.bytes, 10)
	return map[string]any{
		"kind": "bigquery#job", "id": j.project + ":" + j.location + "." + j.id, "jobReference": j.ref(),
		"configuration": j.config, "status": status, "user_email": "fake@bqfake.iam.gserviceaccount.com",
		"statistics": map[string]any{"creationTime": ms, "startTime": ms, "endTime": ms, "totalBytesProcessed": bytes,
			"query": map[string]any{"totalBytesProcessed": bytes, "totalBytesProcessedAccuracy": "PRECISE",
				"cacheHit": false, "statementType": "SELECT", "schema": schemaJSON(j.fields)}},
	}
}

func (s *Server) jobLocation(req queryRequest) string {
	if req.Location != "" {
		return req.Location
	}
	return s.location
}

// checkRequest refuses what the fake (and the Go client) never does.
func checkRequest(req queryRequest) error {
	if req.UseLegacySQL == nil || *req.UseLegacySQL {
		return &apiError{Code: 400, Reason: "invalid", Message: "The fake speaks GoogleSQL only: send useLegacySql=false"}
	}
	if strings.TrimSpace(req.Query) == "" {
		return &apiError{Code: 400, Reason: "invalid", Message: "Query text is empty"}
	}
	return nil
}

// dryRun validates a query and returns its schema and bytes.
func (s *Server) dryRun(ctx context.Context, req queryRequest) ([]Field, int64, error) {
	if err := checkRequest(req); err != nil {
		return nil, 0, err
	}
	q, err := s.translate(req.Query)
	if err != nil {
		return nil, 0, invalidQuery("Syntax error: %v", err)
	}
	args, err := params(req.QueryParameters)
	if err != nil {
		return nil, 0, err
	}
	fields, err := s.describeWith(ctx, req, q, args)
	if err != nil {
		return nil, 0, err
	}
	return fields, s.bytesFor(req.Query), nil
}

// runJob runs a query and stores its result as a job.
func (s *Server) runJob(ctx context.Context, project, id string, req queryRequest, config map[string]any) (*job, error) {
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	if id == "" {
		id = "job_" + randomHex()
	}
	s.mu.Lock()
	j := &job{id: id, project: project, location: s.jobLocation(req), config: config, pending: s.pending, created: time.Now()}
	s.mu.Unlock()
	j.bytes = s.bytesFor(req.Query)
	j.fields, j.rows, j.err = s.execute(ctx, req, j.bytes)
	s.mu.Lock()
	s.jobs[id] = j
	s.mu.Unlock()
	return j, nil
}

func (s *Server) execute(ctx context.Context, req queryRequest, bytes int64) ([]Field, [][]any, *apiError) {
	if limit, err := strconv.ParseInt(req.MaximumBytesBilled, 10, 64); err == nil && limit > 0 && bytes > limit {
		return nil, nil, &apiError{Code: 400, Reason: "bytesBilledLimitExceeded",
			Message: fmt.Sprintf("Query exceeded limit for bytes billed: %d. %d or higher required.", limit, bytes)}
	}
	q, err := s.translate(req.Query)
	if err != nil {
		return nil, nil, invalidQuery("Syntax error: %v", err)
	}
	args, err := params(req.QueryParameters)
	if err != nil {
		return nil, nil, asAPIError(err)
	}
	fields, err := s.describeWith(ctx, req, q, args)
	if err != nil {
		return nil, nil, asAPIError(err)
	}
	rows, err := s.fetchWith(ctx, req, q, args, fields)
	if err != nil {
		return nil, nil, asAPIError(err)
	}
	return fields, rows, nil
}

func asAPIError(err error) *apiError {
	var e *apiError
	if errors.As(err, &e) {
		return e
	}
	return &apiError{Code: 500, Reason: "internalError", Message: err.Error()}
}

// conn returns a connection whose default schema is the request's default
// dataset, and a function that puts it back.
func (s *Server) conn(ctx context.Context, req queryRequest) (*sql.Conn, func(), error) {
	c, err := s.db.Conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	if req.DefaultDataset == nil || req.DefaultDataset.DatasetID == "" {
		return c, func() { _ = c.Close() }, nil
	}
	if _, err := c.ExecContext(ctx, "USE "+quoteIdent(req.DefaultDataset.DatasetID)); err != nil {
		_ = c.Close()
		return nil, nil, notFound("Not found: Dataset %s:%s", s.Project, req.DefaultDataset.DatasetID)
	}
	return c, func() {
		_, _ = c.ExecContext(context.WithoutCancel(ctx), "USE memory.main")
		_ = c.Close()
	}, nil
}

func (s *Server) describe(ctx context.Context, q string) ([]Field, error) {
	return s.describeWith(ctx, queryRequest{}, q, nil)
}

// describeWith binds the query without running it and maps its columns to
// BigQuery fields.
func (s *Server) describeWith(ctx context.Context, req queryRequest, q string, args []any) ([]Field, error) {
	c, done, err := s.conn(ctx, req)
	if err != nil {
		return nil, err
	}
	defer done()
	rows, err := c.QueryContext(ctx, "DESCRIBE "+q, args...)
	if err != nil {
		return nil, s.sqlError(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var fields []Field
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		name, typ := fmt.Sprint(vals[0]), fmt.Sprint(vals[1])
		f, err := fieldOf(name, typ)
		if err != nil {
			return nil, invalidQuery("%v", err)
		}
		s.hintMu.Lock()
		if hint := s.hints[strings.ToLower(name)]; hint != "" && f.Type == "STRING" {
			f.Type = hint
		}
		s.hintMu.Unlock()
		fields = append(fields, f)
	}
	if err := rows.Err(); err != nil {
		return nil, s.sqlError(err)
	}
	return fields, nil
}

func (s *Server) fetch(ctx context.Context, q string, args []any, fields []Field) ([][]any, error) {
	return s.fetchWith(ctx, queryRequest{}, q, args, fields)
}

// fetchWith runs the query and encodes its rows as REST cells.
func (s *Server) fetchWith(ctx context.Context, req queryRequest, q string, args []any, fields []Field) ([][]any, error) {
	c, done, err := s.conn(ctx, req)
	if err != nil {
		return nil, err
	}
	defer done()
	rows, err := c.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.sqlError(err)
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(fields))
		ptrs := make([]any, len(fields))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]any, len(fields))
		for i, f := range fields {
			c, err := cell(f, vals[i])
			if err != nil {
				return nil, err
			}
			row[i] = map[string]any{"v": c}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, s.sqlError(err)
	}
	return out, nil
}

var missingRE = regexp.MustCompile(`(Table|Schema) with name "?([^"!\s]+)"? does not exist`)

// sqlError turns a DuckDB error into BigQuery's: a missing table or
// dataset is 404 notFound, anything else 400 invalidQuery.
func (s *Server) sqlError(err error) error {
	msg := err.Error()
	if m := missingRE.FindStringSubmatch(msg); m != nil {
		kind := map[string]string{"Table": "Table", "Schema": "Dataset"}[m[1]]
		return notFound("Not found: %s %s:%s was not found in location %s", kind, s.Project, m[2], s.location)
	}
	return invalidQuery("%s", strings.TrimSpace(msg))
}

// params converts query parameters to DuckDB arguments: positional ones
// for ?, named ones for @name (translated to $name).
func params(ps []queryParameter) ([]any, error) {
	var out []any
	for _, p := range ps {
		var v any
		if p.ParameterType.Type == "ARRAY" {
			elem := "STRING"
			if p.ParameterType.ArrayType != nil {
				elem = p.ParameterType.ArrayType.Type
			}
			list := []any{}
			for _, av := range p.ParameterValue.ArrayValues {
				x, err := scalarParam(elem, av.Value)
				if err != nil {
					return nil, err
				}
				list = append(list, x)
			}
			v = list
		} else {
			x, err := scalarParam(p.ParameterType.Type, p.ParameterValue.Value)
			if err != nil {
				return nil, err
			}
			v = x
		}
		if p.Name != "" {
			v = sql.Named(p.Name, v)
		}
		out = append(out, v)
	}
	return out, nil
}

func scalarParam(typ string, s *string) (any, error) {
	if s == nil {
		return nil, nil
	}
	var (
		v   any
		err error
	)
	switch typ {
	case "INT64":
		v, err = strconv.ParseInt(*s, 10, 64)
	case "FLOAT64":
		v, err = strconv.ParseFloat(*s, 64)
	case "BOOL":
		v, err = strconv.ParseBool(*s)
	default:
		v = *s // DuckDB casts text to the column's type
	}
	if err != nil {
		return nil, &apiError{Code: 400, Reason: "invalid", Message: fmt.Sprintf("Invalid %s parameter value %q", typ, *s)}
	}
	return v, nil
}

func randomHex() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
