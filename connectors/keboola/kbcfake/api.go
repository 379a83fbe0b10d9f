package kbcfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

const tokenHeader = "X-StorageApi-Token"

func (s *Server) apiMux() http.Handler {
	mux := http.NewServeMux()
	api := func(pattern string, h func(w http.ResponseWriter, r *http.Request, tok *token)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if status := s.injected(); status != 0 {
				writeError(w, status, "fake.injected", http.StatusText(status))
				return
			}
			tok := s.authenticate(r)
			if tok == nil {
				writeError(w, http.StatusUnauthorized, "storage.tokenInvalid", "Invalid access token")
				return
			}
			h(w, r, tok)
		})
	}
	api("GET /v2/storage/tokens/verify", s.verify)
	api("GET /v2/storage/buckets", s.listBuckets)
	api("GET /v2/storage/tables", s.listTables)
	api("GET /v2/storage/buckets/{bucket}/tables", s.listTables)
	api("GET /v2/storage/tables/{table}", s.tableDetail)
	api("POST /v2/storage/tables/{table}/export-async", s.exportAsync)
	api("GET /v2/storage/jobs/{job}", s.jobDetail)
	api("GET /v2/storage/files/{file}", s.fileDetail)
	api("GET /v2/storage/columns/{column}/metadata", s.columnMetadata)
	api("POST /v2/storage/columns/{column}/metadata", s.columnMetadata)
	api("/v2/storage/", func(w http.ResponseWriter, r *http.Request, _ *token) {
		writeError(w, http.StatusNotFound, "notFound", "Route "+r.Method+" "+r.URL.Path+" not found")
	})
	mux.HandleFunc("GET /_signed/files/{file}/{kind}", s.serveSigned)
	return mux
}

// injected pops the status a request must fail with, or 0.
func (s *Server) injected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.inject) == 0 {
		return 0
	}
	status := s.inject[0]
	s.inject = s.inject[1:]
	return status
}

// authenticate returns the request's token: X-StorageApi-Token, or the
// Authorization: Bearer form the PHP client can send.
func (s *Server) authenticate(r *http.Request) *token {
	t := r.Header.Get(tokenHeader)
	if t == "" {
		t, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens[t]
}

func (t *token) canRead(bucket string) bool {
	return t.buckets == nil || slices.Contains(t.buckets, bucket)
}

// writeError answers with the Storage API's error body.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	writeJSON(w, status, map[string]any{
		"error": msg, "code": code, "exceptionId": "exception-" + hex.EncodeToString(b[:]), "status": "error", "context": map[string]any{},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request, tok *token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	perms := map[string]string{}
	for _, b := range s.bucketIDs(tok) {
		perms[b] = "read"
	}
	created := s.stamp(s.now())
	writeJSON(w, http.StatusOK, map[string]any{
		"id": tok.id, "token": r.Header.Get(tokenHeader), "description": "agnes-extractor",
		"created": created, "refreshed": created, "expires": nil, "isExpired": false, "isDisabled": false,
		"isMasterToken": false, "canManageBuckets": false, "canManageTokens": false, "canReadAllFileUploads": false,
		"canPurgeTrash": false, "bucketPermissions": perms, "componentAccess": []any{},
		"creatorToken": map[string]any{"id": 1, "description": "admin@example.com"},
		"organization": map[string]any{"id": 123},
		"owner": map[string]any{
			"id": 1234, "name": "Acme Analytics", "type": "production", "region": "us-east4",
			"defaultBackend": "snowflake", "hasSnowflake": true, "hasBigquery": false,
			"fileStorageProvider": s.provider, "features": []any{}, "dataRetentionTimeInDays": 7,
			"limits": map[string]any{"storage.jobsParallelism": map[string]any{"name": "storage.jobsParallelism", "value": 10}},
		},
	})
}

// bucketIDs returns the ids of the buckets tok can read, sorted.
func (s *Server) bucketIDs(tok *token) []string {
	var out []string
	for _, id := range s.order {
		b := bucketOf(id)
		if tok.canRead(b) && !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	slices.Sort(out)
	return out
}

func bucketOf(tableID string) string { return tableID[:strings.LastIndexByte(tableID, '.')] }

func (s *Server) bucketJSON(id string) map[string]any {
	stage, name, _ := strings.Cut(id, ".")
	var rows, size int64
	for _, tid := range s.order {
		if bucketOf(tid) == id {
			st := s.tables[tid]
			rows += int64(s.rowCount(st))
			size += s.sizeBytes(st)
		}
	}
	return map[string]any{
		"uri": s.api.URL + "/v2/storage/buckets/" + id, "id": id, "name": name,
		"displayName": strings.TrimPrefix(name, "c-"), "stage": stage, "description": "",
		"tables": s.api.URL + "/v2/storage/buckets/" + id + "/tables", "backend": "snowflake",
		"created": s.stamp(s.now()), "lastChangeDate": s.stamp(s.now()), "isReadOnly": false,
		"dataSizeBytes": size, "rowsCount": rows, "isLinkedBucket": false, "color": nil,
	}
}

func (s *Server) listBuckets(w http.ResponseWriter, r *http.Request, tok *token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []any{}
	for _, id := range s.bucketIDs(tok) {
		out = append(out, s.bucketJSON(id))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listTables(w http.ResponseWriter, r *http.Request, tok *token) {
	include := map[string]bool{}
	for v := range strings.SplitSeq(r.URL.Query().Get("include"), ",") {
		include[strings.TrimSpace(v)] = true
	}
	bucket := r.PathValue("bucket")
	s.mu.Lock()
	defer s.mu.Unlock()
	if bucket != "" && !slices.Contains(s.bucketIDs(tok), bucket) {
		writeError(w, http.StatusNotFound, "storage.buckets.notFound", "Bucket "+bucket+" not found")
		return
	}
	out := []any{}
	for _, id := range s.order {
		if b := bucketOf(id); tok.canRead(b) && (bucket == "" || b == bucket) {
			out = append(out, s.tableJSON(s.tables[id], include))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// table resolves a table id for tok: 404 for an unknown id, 403 for a
// bucket the token cannot read. It answers the error itself.
func (s *Server) table(w http.ResponseWriter, id string, tok *token) *tableState {
	st, ok := s.tables[id]
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, "storage.tables.notFound", "The table \""+id+"\" was not found in the bucket \""+bucketOf(id)+"\" in the project \"1234\"")
		return nil
	case !tok.canRead(bucketOf(id)):
		writeError(w, http.StatusForbidden, "accessDenied", "You don't have access to the resource.")
		return nil
	}
	return st
}

func (s *Server) tableDetail(w http.ResponseWriter, r *http.Request, tok *token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.table(w, r.PathValue("table"), tok)
	if st == nil {
		return
	}
	writeJSON(w, http.StatusOK, s.tableJSON(st, map[string]bool{"columns": true, "buckets": true, "metadata": true, "columnMetadata": true}))
}

// source returns the table whose rows and columns st shows: itself or,
// for an alias, its source.
func (s *Server) source(st *tableState) *tableState {
	if st.AliasOf != "" {
		if src, ok := s.tables[st.AliasOf]; ok {
			return src
		}
	}
	return st
}

func (s *Server) rowCount(st *tableState) int {
	st = s.source(st)
	if st.Generate != nil {
		return st.GeneratedRows
	}
	return len(st.Rows)
}

func (s *Server) sizeBytes(st *tableState) int64 {
	st = s.source(st)
	if st.Generate != nil {
		return int64(st.GeneratedRows) * 64
	}
	var n int64
	for _, r := range st.Rows {
		for _, v := range r.Values {
			n += int64(len(v)) + 3
		}
	}
	return n
}

func (s *Server) tableJSON(st *tableState, include map[string]bool) map[string]any {
	src := s.source(st)
	_, name, _ := strings.Cut(strings.TrimPrefix(st.ID, bucketOf(st.ID)), ".")
	changed := st.Created
	for _, r := range src.Rows {
		if r.Changed.After(changed) {
			changed = r.Changed
		}
	}
	out := map[string]any{
		"uri": s.api.URL + "/v2/storage/tables/" + st.ID, "id": st.ID, "name": name, "displayName": name,
		"transactional": false, "primaryKey": nonNil(src.PrimaryKey), "created": s.stamp(st.Created),
		"lastImportDate": s.stamp(changed), "lastChangeDate": s.stamp(changed),
		"rowsCount": s.rowCount(st), "dataSizeBytes": s.sizeBytes(st),
		"isAlias": st.AliasOf != "", "isAliasable": true, "isTyped": len(src.Definition) > 0,
		"timestampType": "MANAGED", "tableType": "table", "path": "kbc_1234." + strings.TrimPrefix(st.ID, "in."),
	}
	if include["columns"] {
		out["columns"] = nonNil(src.Columns)
	}
	if include["buckets"] {
		out["bucket"] = s.bucketJSON(bucketOf(st.ID))
	}
	if include["metadata"] {
		out["metadata"] = nonNilEntries(st.meta)
	}
	if include["columnMetadata"] {
		out["columnMetadata"] = colMetaJSON(st.colMeta)
	}
	if st.AliasOf != "" {
		out["sourceTable"] = map[string]any{
			"id": st.AliasOf, "uri": s.api.URL + "/v2/storage/tables/" + st.AliasOf,
			"project":  map[string]any{"id": 1234, "name": "Acme Analytics"},
			"metadata": nonNilEntries(src.meta), "columnMetadata": colMetaJSON(src.colMeta),
		}
	}
	if len(src.Definition) > 0 {
		var cols []any
		for _, c := range src.Definition {
			cols = append(cols, map[string]any{"name": c.Name, "basetype": c.BaseType,
				"definition": map[string]any{"type": c.Type, "nullable": c.Nullable, "length": c.Length}})
		}
		out["definition"] = map[string]any{"primaryKeysNames": nonNil(src.PrimaryKey), "columns": cols}
	}
	return out
}

// colMetaJSON is an object by column, or [] when empty (the PHP quirk).
func colMetaJSON(m map[string][]metadataEntry) any {
	if len(m) == 0 {
		return []any{}
	}
	return m
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilEntries(s []metadataEntry) []metadataEntry {
	if s == nil {
		return []metadataEntry{}
	}
	return s
}

// columnMetadata lists (GET) or upserts by (provider, key) (POST, 201)
// a column's metadata; the answer is the column's whole list.
func (s *Server) columnMetadata(w http.ResponseWriter, r *http.Request, tok *token) {
	colID := r.PathValue("column")
	i := strings.LastIndexByte(colID, '.')
	if i < 0 {
		writeError(w, http.StatusNotFound, "storage.columns.notFound", "Column "+colID+" not found")
		return
	}
	tableID, column := colID[:i], colID[i+1:]
	var req struct {
		Provider string `json:"provider"`
		Metadata []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"metadata"`
	}
	if r.Method == http.MethodPost {
		if err := decodeJSON(r, &req); err != nil || req.Provider == "" || len(req.Metadata) == 0 {
			writeError(w, http.StatusBadRequest, "storage.metadata.invalid", "provider and metadata are required")
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.table(w, tableID, tok)
	if st == nil {
		return
	}
	if !slices.Contains(s.source(st).Columns, column) {
		writeError(w, http.StatusNotFound, "storage.columns.notFound", "Column "+column+" not found in table "+tableID)
		return
	}
	if r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, nonNilEntries(st.colMeta[column]))
		return
	}
	list := st.colMeta[column]
	for _, m := range req.Metadata {
		e := s.entry(req.Provider, m.Key, m.Value)
		e.Timestamp = s.now().In(s.zone).Format("2006-01-02 15:04:05") // write answers: space, no zone
		if i := slices.IndexFunc(list, func(x metadataEntry) bool { return x.Provider == req.Provider && x.Key == m.Key }); i >= 0 {
			e.ID = list[i].ID
			list[i] = e
		} else {
			list = append(list, e)
		}
	}
	st.colMeta[column] = list
	writeJSON(w, http.StatusCreated, list)
}

func decodeJSON(r *http.Request, v any) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// readBody reads the body and puts it back, so the log and the handler
// both see it.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(strings.NewReader(string(b)))
	return b, nil
}

func parseID(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func notFound(w http.ResponseWriter, what string, id any) {
	writeError(w, http.StatusNotFound, "storage."+what+"s.notFound", fmt.Sprintf("%s %v not found", what, id))
}
