package kbcfake

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // writes Parquet slices
)

// ExportParams is what an export-async body decoded to; JSON and form
// bodies with PHP bracket notation decode the same way.
type ExportParams struct {
	Columns                  []string      `json:"columns"`
	ChangedSince             string        `json:"changedSince"`
	ChangedUntil             string        `json:"changedUntil"`
	WhereFilters             []WhereFilter `json:"whereFilters"`
	Limit                    int           `json:"limit"`
	Gzip                     bool          `json:"gzip"`
	Format                   string        `json:"format"`
	FileType                 string        `json:"fileType"`
	IncludeInternalTimestamp bool          `json:"includeInternalTimestamp"`
}

// WhereFilter is one decoded whereFilters entry.
type WhereFilter struct {
	Column   string   `json:"column"`
	Operator string   `json:"operator"`
	Values   []string `json:"values"`
	DataType string   `json:"dataType,omitempty"`
	Type     string   `json:"type,omitempty"`
}

type job struct {
	id       int64
	tableID  string
	params   ExportParams
	fileID   int64
	cacheHit bool
	created  time.Time
	polls    int
	fail     *JobError
	tokenID  string
}

type file struct {
	id       int64
	provider string
	sliced   bool
	gzip     bool
	fileType string
	name     string
	key      string // object key prefix of the export
	slices   [][]byte
	rows     int
	created  time.Time
	sig      string // of the signed manifest/data URL
	secret   string // GCS access token, S3 secret key or Azure SAS signature
	keyID    string // S3 access key id
	session  string // S3 session token
}

// Fake object storage names.
const (
	gcsBucket      = "kbc-files-fake"
	s3Bucket       = "kbc-sapi-files-fake"
	azureAccount   = "kbcfake"
	azureContainer = "exp-15"
	s3Region       = "us-east-1"
)

func (s *Server) exportAsync(w http.ResponseWriter, r *http.Request, tok *token) {
	id := r.PathValue("table")
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "storage.validation", err.Error())
		return
	}
	params, err := decodeExport(r.Header.Get("Content-Type"), body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "storage.validation", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.table(w, id, tok)
	if st == nil {
		return
	}
	src := s.source(st)
	if err := params.check(src.Columns); err != nil {
		writeError(w, http.StatusBadRequest, "storage.tables.validation", err.Error())
		return
	}
	s.exports = append(s.exports, Export{TableID: id, ContentType: r.Header.Get("Content-Type"), Body: body, Params: params})

	// Identical parameters on an unchanged table may return the file of
	// an earlier export (results.cacheHit).
	canon, _ := json.Marshal(params)
	cacheKey := fmt.Sprintf("%s@%d/%d/%s/%t/%t/%d:%s", id, st.version, src.version, s.provider, s.sliced, s.noEmpty, s.perSlice, canon)
	fileID, hit := s.cache[cacheKey]
	if !hit {
		f, err := s.writeExport(st, src, params)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "storage.export", err.Error())
			return
		}
		fileID = f.id
		s.cache[cacheKey] = fileID
	}
	s.nextID++
	j := &job{id: s.nextID, tableID: id, params: params, fileID: fileID, cacheHit: hit, created: s.now(), tokenID: tok.id, fail: s.failNext}
	s.failNext = nil
	s.jobs[j.id] = j
	writeJSON(w, http.StatusAccepted, s.jobJSON(j, "waiting"))
}

func (s *Server) jobJSON(j *job, status string) map[string]any {
	out := map[string]any{
		"id": j.id, "status": status, "url": s.api.URL + "/v2/storage/jobs/" + strconv.FormatInt(j.id, 10),
		"tableId": j.tableID, "operationName": "tableExport",
		"operationParams": map[string]any{"export": map[string]any{
			"columns": nonNil(j.params.Columns), "limit": nil, "changedSince": nilIfEmpty(j.params.ChangedSince),
			"changedUntil": nilIfEmpty(j.params.ChangedUntil), "gzipOutput": j.params.Gzip, "format": "rfc",
			"whereFilters": j.params.WhereFilters, "fileType": cmpOr(j.params.FileType, "csv"), "timezone": nil,
		}, "queue": "main_fast"},
		"createdTime": s.stamp(j.created), "startTime": nil, "endTime": nil, "runId": nil, "results": nil,
		"creatorToken": map[string]any{"id": j.tokenID, "description": "agnes-extractor"},
		"metrics": map[string]any{"inCompressed": false, "inBytes": 0, "inBytesUncompressed": 0,
			"outCompressed": false, "outBytes": 0, "outBytesUncompressed": 0},
	}
	if status != "waiting" {
		out["startTime"] = s.stamp(j.created.Add(time.Second))
	}
	switch status {
	case "success":
		out["endTime"] = s.stamp(j.created.Add(2 * time.Second))
		out["results"] = map[string]any{"file": map[string]any{"id": j.fileID}, "cacheHit": j.cacheHit}
	case "error":
		out["endTime"] = s.stamp(j.created.Add(2 * time.Second))
		out["error"] = map[string]any{"code": j.fail.Code, "message": j.fail.Message, "exceptionId": j.fail.ExceptionID}
	}
	return out
}

// jobDetail moves a job on by poll count: waiting, then processing, then
// (on the ready-th poll) success or error. A maintenance window answers
// 503 without counting the poll.
func (s *Server) jobDetail(w http.ResponseWriter, r *http.Request, _ *token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maint > 0 {
		s.maint--
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "maintenance",
			"reason": "The system is down for maintenance", "estimatedEndTime": s.stamp(s.now().Add(time.Second))})
		return
	}
	id, _ := parseID(r.PathValue("job"))
	j, ok := s.jobs[id]
	if !ok {
		notFound(w, "job", r.PathValue("job"))
		return
	}
	j.polls++
	status := "processing"
	switch {
	case j.polls >= s.ready && j.fail != nil:
		status = "error"
	case j.polls >= s.ready:
		status = "success"
	case j.polls == 1:
		status = "waiting"
	}
	writeJSON(w, http.StatusOK, s.jobJSON(j, status))
}

func (s *Server) fileDetail(w http.ResponseWriter, r *http.Request, _ *token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, _ := parseID(r.PathValue("file"))
	f, ok := s.files[id]
	if !ok {
		notFound(w, "file", r.PathValue("file"))
		return
	}
	kind := "data"
	if f.sliced {
		kind = "manifest"
	}
	var size int
	for _, b := range f.slices {
		size += len(b)
	}
	out := map[string]any{
		"id": f.id, "created": s.stamp(f.created), "isPublic": false, "isSliced": f.sliced, "isEncrypted": true,
		"name": f.name, "fileType": f.fileType, "url": fmt.Sprintf("%s/_signed/files/%d/%s?sig=%s", s.api.URL, f.id, kind, f.sig),
		"provider": f.provider, "region": s3Region, "sizeBytes": size, "tags": []string{"table-export"}, "maxAgeDays": 15,
		"runId": nil, "runIds": []any{}, "creatorToken": map[string]any{"id": 27978, "description": "agnes-extractor"},
	}
	switch ft := r.URL.Query().Get("federationToken"); {
	case ft != "1" && ft != "true":
	case f.provider == GCP:
		out["gcsPath"] = map[string]any{"bucket": gcsBucket, "key": f.key}
		out["gcsCredentials"] = map[string]any{"access_token": f.secret, "expires_in": 3599, "token_type": "Bearer", "projectId": "kbc-files-fake"}
	case f.provider == AWS:
		out["s3Path"] = map[string]any{"bucket": s3Bucket, "key": f.key}
		out["credentials"] = map[string]any{"AccessKeyId": f.keyID, "SecretAccessKey": f.secret, "SessionToken": f.session,
			"Expiration": s.now().Add(12 * time.Hour).UTC().Format(time.RFC3339)}
	case f.provider == Azure:
		out["absPath"] = map[string]any{"container": azureContainer, "name": f.key}
		out["absCredentials"] = map[string]any{
			"SASConnectionString": "BlobEndpoint=" + s.azure.URL + "/" + azureAccount + ";SharedAccessSignature=" + f.sas(),
			"expiration":          s.stamp(s.now().Add(12 * time.Hour)),
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *file) sas() string { return "sv=2024-08-04&sr=c&sp=rl&sig=" + f.secret }

// ext is the suffix of the file's objects.
func (f *file) ext() string {
	switch {
	case f.fileType == "parquet":
		return "parquet"
	case f.gzip:
		return "csv.gz"
	}
	return "csv"
}

// entryURL is the manifest entry of slice i, in the provider's URL form.
func (f *file) entryURL(i int) string {
	name := fmt.Sprintf("%s_0_%d_0.%s", f.key, i, f.ext())
	switch f.provider {
	case AWS:
		return "s3://" + s3Bucket + "/" + name
	case Azure:
		return "azure://" + azureAccount + ".blob.core.windows.net/" + azureContainer + "/" + name
	}
	return "gs://" + gcsBucket + "/" + name
}

// slice finds the file and slice an object name belongs to.
func (s *Server) slice(name string) (*file, int, bool) {
	for _, f := range s.files {
		rest, ok := strings.CutPrefix(name, f.key+"_0_")
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, "_")
		if i, err := strconv.Atoi(n); err == nil && i < len(f.slices) && name == f.objectName(i) {
			return f, i, true
		}
	}
	return nil, 0, false
}

func (f *file) objectName(i int) string { return fmt.Sprintf("%s_0_%d_0.%s", f.key, i, f.ext()) }

// writeExport snapshots the rows params selects into a new file: RFC 4180
// CSV with every value quoted, no header, split into slices (gzip when
// asked), or Parquet slices.
func (s *Server) writeExport(st, src *tableState, p ExportParams) (*file, error) {
	s.nextID++
	f := &file{id: s.nextID, provider: s.provider, sliced: s.sliced, gzip: p.Gzip && p.FileType != "parquet",
		fileType: cmpOr(p.FileType, "csv"), created: s.now(), sig: randomHex(8), secret: randomHex(16),
		keyID: "ASIA" + strings.ToUpper(randomHex(8)), session: randomHex(24)}
	f.name = st.ID + "." + f.ext()
	f.key = fmt.Sprintf("exp-15/1234/table-exports/%s/%d.%s", strings.ReplaceAll(st.ID, ".", "/"), f.id, f.ext())
	if f.provider == Azure {
		f.key = strings.TrimPrefix(f.key, azureContainer+"/")
	}

	cols := p.Columns
	if len(cols) == 0 {
		cols = src.Columns
	}
	idx := make([]int, len(cols))
	for i, c := range cols {
		idx[i] = slices.Index(src.Columns, c)
	}
	var since, until time.Time
	if p.ChangedSince != "" {
		since, _ = parseTime(p.ChangedSince)
	}
	if p.ChangedUntil != "" {
		until, _ = parseTime(p.ChangedUntil)
	}
	var buf bytes.Buffer
	var chunks [][]byte
	inChunk := 0
	n := s.rowCount(src)
	for i := range n {
		row := s.row(src, i)
		ts := row.Changed.Unix() // _timestamp has second precision
		if (!since.IsZero() && ts < since.Unix()) || (!until.IsZero() && ts >= until.Unix()) || !p.matches(src.Columns, row.Values) {
			continue
		}
		for j, k := range idx {
			if j > 0 {
				buf.WriteByte(',')
			}
			writeField(&buf, row.Values[k])
		}
		if p.IncludeInternalTimestamp {
			buf.WriteByte(',')
			writeField(&buf, row.Changed.UTC().Format("2006-01-02 15:04:05"))
		}
		buf.WriteByte('\n')
		f.rows++
		inChunk++
		if f.sliced && inChunk == s.perSlice {
			chunks = append(chunks, bytes.Clone(buf.Bytes()))
			buf.Reset()
			inChunk = 0
		}
		if p.Limit > 0 && f.rows == p.Limit {
			break
		}
	}
	if inChunk > 0 || !f.sliced || (f.rows == 0 && s.noEmpty) {
		chunks = append(chunks, buf.Bytes())
	}
	if p.IncludeInternalTimestamp {
		cols = append(slices.Clone(cols), "_timestamp")
	}
	for _, c := range chunks {
		b, err := s.encode(c, cols, f)
		if err != nil {
			return nil, err
		}
		f.slices = append(f.slices, b)
	}
	s.files[f.id] = f
	return f, nil
}

func (s *Server) row(st *tableState, i int) Row {
	if st.Generate != nil {
		return st.Generate(i)
	}
	return st.Rows[i]
}

func writeField(buf *bytes.Buffer, v string) {
	if v == Null {
		return // NULL: an empty unquoted field
	}
	buf.WriteByte('"')
	buf.WriteString(strings.ReplaceAll(v, `"`, `""`))
	buf.WriteByte('"')
}

// encode turns a CSV chunk into the bytes of one slice.
func (s *Server) encode(chunk []byte, cols []string, f *file) ([]byte, error) {
	if f.fileType == "parquet" {
		return toParquet(chunk, cols)
	}
	if !f.gzip {
		return chunk, nil
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(chunk); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// toParquet converts a header-less CSV chunk into a Parquet file of
// VARCHAR columns (an untyped table), NULLs kept.
func toParquet(chunk []byte, cols []string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "kbcfake-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	src, dst := filepath.Join(dir, "slice.csv"), filepath.Join(dir, "slice.parquet")
	if err := os.WriteFile(src, chunk, 0o600); err != nil {
		return nil, err
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	defs := make([]string, len(cols))
	for i, c := range cols {
		defs[i] = quote(c, '\'') + ": 'VARCHAR'"
	}
	q := fmt.Sprintf(`COPY (SELECT * FROM read_csv(%s, header = false, auto_detect = false, delim = ',', quote = '"', escape = '"',
		new_line = '\n', allow_quoted_nulls = false, columns = {%s})) TO %s (FORMAT parquet)`,
		quote(src, '\''), strings.Join(defs, ", "), quote(dst, '\''))
	if _, err := db.Exec(q); err != nil {
		return nil, err
	}
	return os.ReadFile(dst)
}

func quote(s string, q byte) string {
	return string(q) + strings.ReplaceAll(s, string(q), string(q)+string(q)) + string(q)
}

// matches applies the whereFilters (AND) to a row.
func (p ExportParams) matches(columns, values []string) bool {
	for _, f := range p.WhereFilters {
		v := values[slices.Index(columns, f.Column)]
		if v == Null {
			return false
		}
		switch f.Operator {
		case "", "eq":
			if !slices.Contains(f.Values, v) {
				return false
			}
		case "ne":
			if slices.Contains(f.Values, v) {
				return false
			}
		default:
			c, ok := compare(v, f.Values[0], f.DataType != "")
			if !ok {
				return false // try_to_double(...) is NULL
			}
			if !map[string]bool{"gt": c > 0, "ge": c >= 0, "lt": c < 0, "le": c <= 0}[f.Operator] {
				return false
			}
		}
	}
	return true
}

func compare(a, b string, numeric bool) (int, bool) {
	if !numeric {
		return strings.Compare(a, b), true
	}
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	switch {
	case x < y:
		return -1, true
	case x > y:
		return 1, true
	}
	return 0, true
}

var (
	operators = []string{"eq", "ne", "gt", "ge", "lt", "le"}
	dataTypes = []string{"INTEGER", "DOUBLE", "BIGINT", "REAL", "DECIMAL"}
)

// check validates the parameters as the API does.
func (p ExportParams) check(columns []string) error {
	for _, c := range p.Columns {
		if !slices.Contains(columns, c) {
			return fmt.Errorf("Columns %s not found in the table", c)
		}
	}
	for _, f := range p.WhereFilters {
		switch {
		case f.Column == "":
			return errors.New("whereFilters: column is required")
		case !slices.Contains(columns, f.Column):
			return fmt.Errorf("whereFilters: column %s not found in the table", f.Column)
		case f.Operator != "" && !slices.Contains(operators, f.Operator):
			return fmt.Errorf("whereFilters: operator %s is not supported, use one of %s", f.Operator, strings.Join(operators, ", "))
		case len(f.Values) == 0:
			return errors.New("whereFilters: values are required")
		case len(f.Values) > 1 && f.Operator != "" && f.Operator != "eq" && f.Operator != "ne":
			return errors.New(`whereFilter with multiple values can be used only with "eq", "ne" operators`)
		case f.DataType != "" && !slices.Contains(dataTypes, f.DataType):
			return fmt.Errorf("whereFilters: dataType %s is not supported", f.DataType)
		}
	}
	for _, t := range []string{p.ChangedSince, p.ChangedUntil} {
		if _, err := parseTime(t); t != "" && err != nil {
			return err
		}
	}
	switch {
	case p.FileType != "" && p.FileType != "csv" && p.FileType != "parquet":
		return fmt.Errorf("fileType %s is not supported", p.FileType)
	case p.Format != "" && p.Format != "rfc":
		return fmt.Errorf("the fake exports only the rfc format, not %s", p.Format)
	}
	return nil
}

// parseTime reads changedSince/changedUntil: unix seconds, "YYYY-MM-DD
// HH:MM:SS" (UTC) or ISO 8601 with an offset.
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", time.RFC3339, "2006-01-02T15:04:05-0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("changedSince/changedUntil %q is not a time", s)
}

// decodeExport reads a JSON body, or a form body in PHP bracket notation
// (whereFilters[0][values][1]=x, whereValues[]=x), into ExportParams.
func decodeExport(contentType string, body []byte) (ExportParams, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	var raw map[string]any
	switch mt {
	case "application/json":
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil {
			return ExportParams{}, fmt.Errorf("invalid JSON body: %w", err)
		}
	case "application/x-www-form-urlencoded", "":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return ExportParams{}, fmt.Errorf("invalid form body: %w", err)
		}
		raw = phpForm(form)
	default:
		return ExportParams{}, fmt.Errorf("unsupported content type %s", contentType)
	}
	var p ExportParams
	for _, c := range strings.Split(str(raw["columns"]), ",") {
		if c = strings.TrimSpace(c); c != "" {
			p.Columns = append(p.Columns, c)
		}
	}
	if list, ok := raw["columns"].([]any); ok {
		p.Columns = nil
		for _, c := range list {
			p.Columns = append(p.Columns, str(c))
		}
	}
	p.ChangedSince, p.ChangedUntil = str(raw["changedSince"]), str(raw["changedUntil"])
	p.Format, p.FileType = str(raw["format"]), str(raw["fileType"])
	p.Gzip, p.IncludeInternalTimestamp = truthy(raw["gzip"]), truthy(raw["includeInternalTimestamp"])
	if l := str(raw["limit"]); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			return ExportParams{}, fmt.Errorf("limit %q is not a number", l)
		}
		p.Limit = n
	}
	filters, _ := raw["whereFilters"].([]any)
	for _, f := range filters {
		m, ok := f.(map[string]any)
		if !ok {
			return ExportParams{}, errors.New("whereFilters must be a list of objects")
		}
		wf := WhereFilter{Column: str(m["column"]), Operator: str(m["operator"]), DataType: str(m["dataType"]), Type: str(m["type"])}
		vals, _ := m["values"].([]any)
		for _, v := range vals {
			wf.Values = append(wf.Values, str(v))
		}
		p.WhereFilters = append(p.WhereFilters, wf)
	}
	if col := str(raw["whereColumn"]); col != "" { // the deprecated single filter
		wf := WhereFilter{Column: col, Operator: str(raw["whereOperator"])}
		vals, _ := raw["whereValues"].([]any)
		for _, v := range vals {
			wf.Values = append(wf.Values, str(v))
		}
		p.WhereFilters = append(p.WhereFilters, wf)
	}
	return p, nil
}

func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

func truthy(v any) bool {
	switch s := str(v); s {
	case "1", "true":
		return true
	}
	return false
}

// phpForm decodes PHP bracket notation into nested maps and lists, as
// PHP's $_POST would.
func phpForm(form url.Values) map[string]any {
	root := map[string]any{}
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range form[k] {
			path := splitBrackets(k)
			node := root
			for i, p := range path {
				if p == "" { // [] appends
					p = strconv.Itoa(len(node))
				}
				if i == len(path)-1 {
					node[p] = v
					break
				}
				next, ok := node[p].(map[string]any)
				if !ok {
					next = map[string]any{}
					node[p] = next
				}
				node = next
			}
		}
	}
	return listify(root).(map[string]any)
}

func splitBrackets(k string) []string {
	base, rest, _ := strings.Cut(k, "[")
	path := []string{base}
	for rest != "" {
		part, after, _ := strings.Cut(rest, "]")
		path = append(path, part)
		rest = strings.TrimPrefix(after, "[")
	}
	return path
}

// listify turns maps whose keys are all 0..n-1 into lists.
func listify(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	list := make([]any, len(m))
	isList := len(m) > 0
	for k, x := range m {
		m[k] = listify(x)
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= len(m) {
			isList = false
			continue
		}
		list[i] = m[k]
	}
	if isList {
		return list
	}
	return m
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
