package jirafake

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Route names a REST endpoint for fault injection and hit counts.
type Route string

// The fake's routes.
const (
	RouteIssue      Route = "issue"      // GET /rest/api/3/issue/{idOrKey}
	RouteComments   Route = "comment"    // GET /rest/api/3/issue/{key}/comment
	RouteChangelog  Route = "changelog"  // GET /rest/api/3/issue/{key}/changelog
	RouteRemoteLink Route = "remotelink" // GET /rest/api/3/issue/{key}/remotelink
	RouteSearch     Route = "search"     // POST /rest/api/3/search/jql
	RouteAttachment Route = "attachment" // GET /rest/api/3/attachment/content/{id}
	RouteMedia      Route = "media"      // the media host the attachment content redirects to
	RouteField      Route = "field"      // GET /rest/api/3/field
)

// Fault is an injected failure of a route. The first Skip requests pass;
// the next Times requests (default 1) run Do, if set, and then answer
// Status with a Jira error body (Status 0: served normally after Do).
type Fault struct {
	Skip       int
	Times      int
	Status     int
	RetryAfter string // Retry-After header value: seconds, an HTTP-date, or "" for none
	Do         func()
}

// Inject queues a fault on a route; faults of a route apply in order.
func (f *Fake) Inject(r Route, fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fault.Times == 0 {
		fault.Times = 1
	}
	f.faults[r] = append(f.faults[r], &fault)
}

// ClearFaults drops the faults still queued on a route.
func (f *Fake) ClearFaults(r Route) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.faults, r)
}

// Hits is how many requests a route has received (faulted ones included).
func (f *Fake) Hits(r Route) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[r]
}

// take counts a hit and returns the fault that applies to it, if any.
func (f *Fake) take(r Route) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hits[r]++
	if len(f.faults[r]) > 0 {
		ft := f.faults[r][0]
		if ft.Skip > 0 {
			ft.Skip--
			return nil
		}
		ft.Times--
		if ft.Times <= 0 {
			f.faults[r] = f.faults[r][1:]
		}
		return ft
	}
	return nil
}

func (f *Fake) handler() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /rest/api/3/issue/{key}", f.route(RouteIssue, f.getIssue))
	api.HandleFunc("GET /rest/api/3/issue/{key}/comment", f.route(RouteComments, f.getComments))
	api.HandleFunc("GET /rest/api/3/issue/{key}/changelog", f.route(RouteChangelog, f.getChangelog))
	api.HandleFunc("GET /rest/api/3/issue/{key}/remotelink", f.route(RouteRemoteLink, f.getRemoteLinks))
	api.HandleFunc("POST /rest/api/3/search/jql", f.route(RouteSearch, f.searchJQL))
	api.HandleFunc("GET /rest/api/3/attachment/content/{id}", f.route(RouteAttachment, f.getAttachmentContent))
	api.HandleFunc("GET /rest/api/3/field", f.route(RouteField, f.getFields))
	api.HandleFunc("GET /rest/api/3/myself", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"accountId": Agent.AccountID, "emailAddress": f.opts.Email,
			"displayName": Agent.Name, "active": true, "timeZone": f.loc.String()})
	})

	root := http.NewServeMux()
	root.HandleFunc("GET /_edge/tenant_info", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"cloudId": f.opts.CloudID})
	})
	root.Handle("/rest/", f.basicAuth(api))
	// The gateway form: https://api.atlassian.com/ex/jira/{cloudId}/rest/api/3/...
	root.HandleFunc("/ex/jira/{cloud}/", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("cloud") != f.opts.CloudID {
			writeJSON(w, http.StatusNotFound, map[string]any{"code": 404, "message": "Not Found"}) // the gateway's, not Jira's
			return
		}
		prefix := "/ex/jira/" + f.opts.CloudID
		r2 := r.Clone(r.Context())
		r2.URL.Path = strings.TrimPrefix(r.URL.Path, prefix)
		r2.URL.RawPath = ""
		f.basicAuth(api).ServeHTTP(w, r2)
	})
	return root
}

// route applies a route's faults before its handler.
func (f *Fake) route(r Route, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if ft := f.take(r); ft != nil {
			if ft.Do != nil {
				ft.Do()
			}
			if ft.Status != 0 {
				if ft.RetryAfter != "" {
					w.Header().Set("Retry-After", ft.RetryAfter)
				}
				if ft.Status == http.StatusTooManyRequests {
					w.Header().Set("RateLimit-Reason", "jira-cost-based")
				}
				jiraError(w, ft.Status, http.StatusText(ft.Status))
				return
			}
		}
		h(w, req)
	}
}

func (f *Fake) basicAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(f.opts.Email)) != 1 ||
			subtle.ConstantTimeCompare([]byte(pass), []byte(f.opts.Token)) != 1 {
			jiraError(w, http.StatusUnauthorized, "Client must be authenticated to access this resource.")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func jiraError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"errorMessages": []string{msg}, "errors": map[string]any{}})
}

const noIssue = "Issue does not exist or you do not have permission to see it."

// lookup finds a live issue by id or key. Callers hold mu.
func (f *Fake) lookup(idOrKey string) *issue {
	is := f.issues[idOrKey]
	if is == nil {
		is = f.byID[idOrKey]
	}
	if is == nil || is.deleted {
		return nil
	}
	return is
}

func (f *Fake) getIssue(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.lookup(r.PathValue("key"))
	if is == nil {
		jiraError(w, http.StatusNotFound, noIssue)
		return
	}
	q := r.URL.Query()
	var want []string // nil: all fields
	if fs := q.Get("fields"); fs != "" && fs != "*all" && fs != "*navigable" {
		want = strings.Split(fs, ",")
	}
	expand := strings.Split(q.Get("expand"), ",")
	out := map[string]any{"id": is.id, "key": is.key, "self": f.srv.URL + "/rest/api/3/issue/" + is.id,
		"fields": f.fieldsJSON(is, want)}
	if slices.Contains(expand, "changelog") {
		n := len(is.histories)
		first := max(0, n-100)
		out["changelog"] = map[string]any{"startAt": first, "maxResults": n - first, "total": n,
			"histories": is.histories[first:]}
	}
	if slices.Contains(expand, "renderedFields") {
		out["renderedFields"] = map[string]any{"description": "<p>" + plain(is.fields["description"]) + "</p>"}
	}
	writeJSON(w, http.StatusOK, out)
}

// fieldsJSON renders an issue's fields, all of them or those listed. Callers hold mu.
func (f *Fake) fieldsJSON(is *issue, want []string) map[string]any {
	all := map[string]any{}
	for k, v := range is.fields {
		all[k] = v
	}
	total := len(is.comments)
	first := max(0, total-100)
	var comments []any
	for _, c := range is.comments[first:] {
		comments = append(comments, f.commentJSON(is, c))
	}
	all["comment"] = map[string]any{"comments": nonNil(comments), "maxResults": 100, "total": total, "startAt": first}
	var atts []any
	for _, id := range is.attachments {
		atts = append(atts, f.attachmentJSON(f.attachments[id]))
	}
	all["attachment"] = nonNil(atts)
	var links []any
	for _, id := range is.links {
		links = append(links, f.linkJSON(is, f.links[id]))
	}
	all["issuelinks"] = nonNil(links)
	if f.denySLA {
		for _, sf := range f.opts.SLAFields {
			if _, ok := all[sf.ID]; ok {
				all[sf.ID] = map[string]any{"errorMessage": "You do not have permission to view this field: it requires a Jira Service Management agent licence."}
			}
		}
	}
	if want == nil {
		return all
	}
	out := map[string]any{}
	for _, k := range want {
		if v, ok := all[k]; ok {
			out[k] = v
		}
	}
	return out
}

func nonNil(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

func plain(adf any) string {
	b, _ := json.Marshal(adf)
	var doc struct {
		Content []struct {
			Content []struct{ Text string }
		}
	}
	_ = json.Unmarshal(b, &doc)
	var parts []string
	for _, p := range doc.Content {
		for _, t := range p.Content {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, "")
}

func (f *Fake) commentJSON(is *issue, c *comment) map[string]any {
	m := map[string]any{
		"id": c.id, "self": f.srv.URL + "/rest/api/3/issue/" + is.id + "/comment/" + c.id,
		"author": userJSON(c.author), "updateAuthor": userJSON(c.updateAuthor), "body": adfText(c.text),
		"created": c.created.Format(TimeLayout), "updated": c.updated.Format(TimeLayout),
	}
	if c.public != nil {
		m["jsdPublic"] = c.public
	}
	return m
}

func (f *Fake) attachmentJSON(a *attachment) map[string]any {
	return map[string]any{
		"self": f.srv.URL + "/rest/api/3/attachment/" + a.id, "id": a.id, "filename": a.filename,
		"author": userJSON(a.author), "created": a.created.Format(TimeLayout), "size": len(a.data), "mimeType": a.mime,
		"content":   f.srv.URL + "/rest/api/3/attachment/content/" + a.id,
		"thumbnail": f.srv.URL + "/rest/api/3/attachment/thumbnail/" + a.id,
	}
}

// linkJSON renders a link as an element of the issuelinks of is.
func (f *Fake) linkJSON(is *issue, l *link) map[string]any {
	in, out := linkTypes(l.typ)
	m := map[string]any{"id": l.id, "self": f.srv.URL + "/rest/api/3/issueLink/" + l.id,
		"type": map[string]any{"id": "10000", "name": l.typ, "inward": in, "outward": out}}
	other, side := l.inward, "outwardIssue" // is blocks other
	if is.key == l.inward {
		other, side = l.outward, "inwardIssue"
	}
	o := f.issues[other]
	m[side] = map[string]any{"id": o.id, "key": o.key, "self": f.srv.URL + "/rest/api/3/issue/" + o.id,
		"fields": map[string]any{"summary": o.fields["summary"], "status": o.fields["status"],
			"priority": o.fields["priority"], "issuetype": o.fields["issuetype"]}}
	return m
}

// linkEventJSON is the issueLink of an issuelink_* webhook: numeric ids, no keys.
func (f *Fake) linkEventJSON(l *link) map[string]any {
	in, out := linkTypes(l.typ)
	id, _ := strconv.Atoi(l.id)
	src, _ := strconv.Atoi(f.issues[l.outward].id)
	dst, _ := strconv.Atoi(f.issues[l.inward].id)
	return map[string]any{"id": id, "sourceIssueId": src, "destinationIssueId": dst,
		"issueLinkType": map[string]any{"id": 10000, "name": l.typ, "inwardName": in, "outwardName": out,
			"isSubTaskLinkType": false, "isSystemLinkType": false},
		"systemLink": false}
}

// page reads startAt and maxResults (default and cap 100).
func page(r *http.Request) (startAt, maxResults int, err error) {
	q := r.URL.Query()
	startAt, maxResults = 0, 100
	if s := q.Get("startAt"); s != "" {
		if startAt, err = strconv.Atoi(s); err != nil || startAt < 0 {
			return 0, 0, fmt.Errorf("startAt %q is not a non-negative integer", s)
		}
	}
	if s := q.Get("maxResults"); s != "" {
		if maxResults, err = strconv.Atoi(s); err != nil || maxResults < 0 {
			return 0, 0, fmt.Errorf("maxResults %q is not a non-negative integer", s)
		}
	}
	return startAt, min(maxResults, 100), nil
}

func window[T any](all []T, startAt, n int) []T {
	if startAt >= len(all) {
		return nil
	}
	return all[startAt:min(len(all), startAt+n)]
}

func (f *Fake) getComments(w http.ResponseWriter, r *http.Request) {
	startAt, n, err := page(r)
	if err != nil {
		jiraError(w, http.StatusBadRequest, err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.lookup(r.PathValue("key"))
	if is == nil {
		jiraError(w, http.StatusNotFound, noIssue)
		return
	}
	var out []any
	for _, c := range window(is.comments, startAt, n) {
		out = append(out, f.commentJSON(is, c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"startAt": startAt, "maxResults": n, "total": len(is.comments), "comments": nonNil(out)})
}

func (f *Fake) getChangelog(w http.ResponseWriter, r *http.Request) {
	startAt, n, err := page(r)
	if err != nil {
		jiraError(w, http.StatusBadRequest, err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.lookup(r.PathValue("key"))
	if is == nil {
		jiraError(w, http.StatusNotFound, noIssue)
		return
	}
	var values []any
	for _, h := range window(is.histories, startAt, n) {
		values = append(values, h)
	}
	total := len(is.histories)
	last := startAt+n >= total
	out := map[string]any{"self": r.URL.String(), "maxResults": n, "startAt": startAt, "total": total,
		"isLast": last, "values": nonNil(values)}
	if !last {
		out["nextPage"] = fmt.Sprintf("%s/rest/api/3/issue/%s/changelog?startAt=%d&maxResults=%d", f.srv.URL, is.key, startAt+n, n)
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *Fake) getRemoteLinks(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.lookup(r.PathValue("key"))
	if is == nil {
		jiraError(w, http.StatusNotFound, noIssue)
		return
	}
	out := make([]any, len(is.remote))
	for i, rl := range is.remote {
		out[i] = rl
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *Fake) getAttachmentContent(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	a := f.attachments[r.PathValue("id")]
	f.mu.Unlock()
	if a == nil {
		jiraError(w, http.StatusNotFound, "The attachment with id "+r.PathValue("id")+" does not exist.")
		return
	}
	if r.URL.Query().Get("redirect") == "false" {
		w.Header().Set("Content-Type", a.mime)
		_, _ = w.Write(a.data)
		return
	}
	http.Redirect(w, r, f.media.URL+"/file/"+a.id+"/binary?token="+mediaToken(a.id), http.StatusSeeOther)
}

func mediaToken(id string) string {
	sum := sha256.Sum256([]byte("media:" + id))
	return hex.EncodeToString(sum[:8])
}

// mediaHandler serves attachment bytes to a request carrying the token
// the redirect put in the URL; it takes no Basic auth.
func (f *Fake) mediaHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /file/{id}/binary", f.route(RouteMedia, func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		f.mu.Lock()
		a := f.attachments[id]
		f.mu.Unlock()
		if a == nil || r.URL.Query().Get("token") != mediaToken(id) {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", a.mime)
		w.Header().Set("Content-Length", strconv.Itoa(len(a.data)))
		_, _ = w.Write(a.data)
	}))
	return mux
}

func (f *Fake) getFields(w http.ResponseWriter, _ *http.Request) {
	out := []any{
		map[string]any{"id": "summary", "key": "summary", "name": "Summary", "custom": false, "schema": map[string]any{"type": "string", "system": "summary"}},
		map[string]any{"id": "status", "key": "status", "name": "Status", "custom": false, "schema": map[string]any{"type": "status", "system": "status"}},
	}
	for _, sf := range f.opts.SLAFields {
		n, _ := strconv.Atoi(strings.TrimPrefix(sf.ID, "customfield_"))
		out = append(out, map[string]any{"id": sf.ID, "key": sf.ID, "name": sf.Name, "custom": true,
			"schema": map[string]any{"type": "sd-servicelevelagreement", "custom": sf.Custom, "customId": n}})
	}
	writeJSON(w, http.StatusOK, out)
}

type searchRequest struct {
	JQL           string   `json:"jql"`
	MaxResults    *int     `json:"maxResults"`
	Fields        []string `json:"fields"`
	NextPageToken string   `json:"nextPageToken"`
}

func (f *Fake) searchJQL(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		jiraError(w, http.StatusBadRequest, err.Error())
		return
	}
	var req searchRequest
	if err := json.Unmarshal(body, &req); err != nil {
		jiraError(w, http.StatusBadRequest, "Invalid request payload. Refer to the REST API documentation and try again.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	q, err := parseJQL(req.JQL, f.now, f.loc)
	if err != nil {
		jiraError(w, http.StatusBadRequest, err.Error())
		return
	}
	size := 50
	if req.MaxResults != nil {
		size = min(max(*req.MaxResults, 1), 100)
	}
	offset := 0
	if req.NextPageToken != "" {
		if offset, err = readToken(req.NextPageToken, req.JQL); err != nil {
			jiraError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	var matched []*issue
	for _, k := range f.liveKeys() {
		if is := f.issues[k]; q.match(is) {
			matched = append(matched, is)
		}
	}
	q.sort(matched)
	var fields []string
	for _, fl := range req.Fields {
		if fl != "key" && fl != "id" {
			fields = append(fields, fl)
		}
	}
	var out []any
	for _, is := range window(matched, offset, size) {
		out = append(out, map[string]any{"id": is.id, "key": is.key, "self": f.srv.URL + "/rest/api/3/issue/" + is.id,
			"fields": f.fieldsJSON(is, append([]string{}, fields...))})
	}
	resp := map[string]any{"issues": nonNil(out)}
	if offset+size < len(matched) {
		resp["nextPageToken"] = makeToken(offset+size, req.JQL) // absent, not null, on the last page
		resp["isLast"] = false
	} else {
		resp["isLast"] = true
	}
	writeJSON(w, http.StatusOK, resp)
}

func makeToken(offset int, jql string) string {
	sum := sha256.Sum256([]byte(jql))
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d|%x", offset, sum[:6]))
}

func readToken(tok, jql string) (int, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	off, hash, ok := strings.Cut(string(raw), "|")
	sum := sha256.Sum256([]byte(jql))
	if err != nil || !ok || hash != fmt.Sprintf("%x", sum[:6]) {
		return 0, fmt.Errorf("The provided next page token is invalid or expired.")
	}
	return strconv.Atoi(off)
}
