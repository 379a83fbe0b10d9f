// Package jirafake is a faithful fake of Jira Cloud for tests: an
// httptest server speaking REST v3 as the Agnes connector uses it (issue
// GET with fields and expand, comment and changelog paging, remote links,
// attachment content with its media redirect, search/jql with
// nextPageToken, /field, /_edge/tenant_info, Basic auth and the
// api.atlassian.com gateway form), an in-memory issue store whose mutators
// append histories and queue webhook deliveries the way Jira does, fault
// injection per route, and a webhook sender that signs the exact body
// bytes. Shapes follow docs/reference/jira.md §3.4, §4 and §13.
package jirafake

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TimeLayout is how Jira writes timestamps: milliseconds and a ±hhmm offset.
const TimeLayout = "2006-01-02T15:04:05.000-0700"

// User is a Jira account. Email is empty when the user's privacy settings
// hide it (the API then omits emailAddress).
type User struct {
	AccountID, Email, Name string
}

// Well-known users of the fake.
var (
	Customer = User{AccountID: "a1", Email: "cust@example.com", Name: "Cus Tomer"}
	Agent    = User{AccountID: "a2", Email: "ann@acme.com", Name: "Ann Agent"}
	Private  = User{AccountID: "a3", Name: "Pat Private"} // no visible email
)

// FieldDef is a custom field listed by GET /rest/api/3/field.
type FieldDef struct {
	ID, Name, Custom string // Custom is schema.custom, e.g. com.atlassian.servicedesk:sd-sla-field
}

// Options configure a Fake. Zero values get defaults.
type Options struct {
	Email, Token string        // Basic auth credentials (default ann@acme.com / fake-token)
	CloudID      string        // the gateway's cloud id (default 11111111-2222-3333-4444-555555555555)
	Offset       time.Duration // the API user's UTC offset Jira writes times in (default -5h)
	Start        time.Time     // the fake clock's start (default 2026-01-31T23:30:00.123-05:00)
	// SLAFields are the JSM SLA custom fields /field lists (default
	// customfield_10328 "Time to first response").
	SLAFields []FieldDef
	// CategoryNames localises status category names by key (e.g.
	// {"done": "Hotovo"}): Jira names them in the user's language.
	CategoryNames map[string]string
}

// Fake is a Jira Cloud site. All methods are safe for concurrent use.
type Fake struct {
	opts  Options
	srv   *httptest.Server
	media *httptest.Server

	mu          sync.Mutex
	loc         *time.Location
	now         time.Time
	seq         int
	issues      map[string]*issue // by key
	byID        map[string]*issue
	counters    map[string]int // last issue number per project
	attachments map[string]*attachment
	links       map[string]*link
	denySLA     bool
	faults      map[Route][]*Fault
	hits        map[Route]int
	outbox      []Delivery
}

type issue struct {
	id, key, project string
	deleted          bool
	fields           map[string]any // JSON-ready values, by field id
	comments         []*comment
	histories        []map[string]any
	attachments      []string // ids
	links            []string // ids
	remote           []map[string]any
}

type comment struct {
	id                   string
	author, updateAuthor User
	text                 string
	created, updated     time.Time
	public               any // jsdPublic: a bool, or something else to test "only a JSON boolean"
}

type attachment struct {
	id, issueKey, filename, mime string
	author                       User
	created                      time.Time
	data                         []byte
}

type link struct {
	id, typ         string // typ: Blocks, Relates, ...
	outward, inward string // issue keys: outward blocks inward
}

// New starts a fake Jira; it stops when the test ends.
func New(t interface{ Cleanup(func()) }, opts Options) *Fake {
	if opts.Email == "" {
		opts.Email = "ann@acme.com"
	}
	if opts.Token == "" {
		opts.Token = "fake-token"
	}
	if opts.CloudID == "" {
		opts.CloudID = "11111111-2222-3333-4444-555555555555"
	}
	if opts.Offset == 0 {
		opts.Offset = -5 * time.Hour
	}
	loc := time.FixedZone("", int(opts.Offset/time.Second))
	if opts.Start.IsZero() {
		opts.Start = time.Date(2026, 1, 31, 23, 30, 0, 123e6, loc)
	}
	if opts.SLAFields == nil {
		opts.SLAFields = []FieldDef{{ID: "customfield_10328", Name: "Time to first response", Custom: "com.atlassian.servicedesk:sd-sla-field"}}
	}
	f := &Fake{
		opts: opts, loc: loc, now: opts.Start.In(loc), seq: 10000,
		issues: map[string]*issue{}, byID: map[string]*issue{}, counters: map[string]int{},
		attachments: map[string]*attachment{}, links: map[string]*link{},
		faults: map[Route][]*Fault{}, hits: map[Route]int{},
	}
	f.media = httptest.NewServer(f.mediaHandler())
	f.srv = httptest.NewServer(f.handler())
	t.Cleanup(func() {
		f.srv.Close()
		f.media.Close()
	})
	return f
}

// URL is the site's base URL (what JIRA_BASE_URL points at).
func (f *Fake) URL() string { return f.srv.URL }

// MediaURL is the second host attachment content redirects to.
func (f *Fake) MediaURL() string { return f.media.URL }

// Email and Token are the Basic auth credentials the fake accepts.
func (f *Fake) Email() string { return f.opts.Email }

// Token is the API token the fake accepts.
func (f *Fake) Token() string { return f.opts.Token }

// CloudID is the site's cloud id, for the /ex/jira/{cloudId} gateway form.
func (f *Fake) CloudID() string { return f.opts.CloudID }

// Now is the fake clock. Every mutation advances it by a minute.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the fake clock forward.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// DenySLA makes SLA fields answer {"errorMessage": ...}, as for an account
// without a JSM agent licence.
func (f *Fake) DenySLA(deny bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.denySLA = deny
}

// tick advances the clock for a mutation and returns the new time. Callers hold mu.
func (f *Fake) tick() time.Time {
	f.now = f.now.Add(time.Minute)
	return f.now
}

func (f *Fake) nextID() string {
	f.seq++
	return strconv.Itoa(f.seq)
}

func (f *Fake) mustIssue(key string) *issue {
	is := f.issues[key]
	if is == nil || is.deleted {
		panic(fmt.Sprintf("jirafake: no issue %s", key))
	}
	return is
}

// NewIssue is what CreateIssue needs. Empty fields get defaults.
type NewIssue struct {
	Project     string // default SUP
	Summary     string
	Description string // plain text, stored as an ADF paragraph
	Type        string // default Bug
	Priority    string // default Medium
	Reporter    User   // default Customer
	Assignee    *User
	Labels      []string
	DueDate     string         // YYYY-MM-DD
	Fields      map[string]any // custom fields by id, JSON-ready
}

// CreateIssue creates an issue in status "To Do" and queues
// jira:issue_created. It returns the key.
func (f *Fake) CreateIssue(n NewIssue) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n.Project == "" {
		n.Project = "SUP"
	}
	if n.Type == "" {
		n.Type = "Bug"
	}
	if n.Priority == "" {
		n.Priority = "Medium"
	}
	if n.Reporter == (User{}) {
		n.Reporter = Customer
	}
	at := f.tick()
	f.counters[n.Project]++
	is := &issue{id: f.nextID(), key: fmt.Sprintf("%s-%d", n.Project, f.counters[n.Project]), project: n.Project}
	labels := n.Labels
	if labels == nil {
		labels = []string{}
	}
	is.fields = map[string]any{
		"summary":        n.Summary,
		"description":    adfText(n.Description),
		"issuetype":      map[string]any{"name": n.Type, "subtask": false},
		"priority":       map[string]any{"name": n.Priority},
		"resolution":     nil,
		"project":        map[string]any{"key": n.Project, "name": projectName(n.Project)},
		"creator":        userJSON(n.Reporter),
		"reporter":       userJSON(n.Reporter),
		"assignee":       nil,
		"created":        at.Format(TimeLayout),
		"updated":        at.Format(TimeLayout),
		"resolutiondate": nil,
		"duedate":        nil,
		"labels":         labels,
	}
	if n.Assignee != nil {
		is.fields["assignee"] = userJSON(*n.Assignee)
	}
	if n.DueDate != "" {
		is.fields["duedate"] = n.DueDate
	}
	f.setStatus(is, "To Do")
	for id, v := range n.Fields {
		is.fields[id] = v
	}
	f.issues[is.key] = is
	f.byID[is.id] = is
	f.queueIssueEvent("jira:issue_created", "issue_created", is, n.Reporter, nil)
	return is.key
}

func projectName(key string) string {
	if key == "SUP" {
		return "Support"
	}
	return key + " project"
}

// Update sets fields (by id, JSON-ready values; nil clears), appends one
// history with an item per field and queues jira:issue_updated.
func (f *Fake) Update(key string, by User, set map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.mustIssue(key)
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var items []map[string]any
	for _, id := range ids {
		items = append(items, changeItem(id, is.fields[id], set[id]))
		is.fields[id] = set[id]
	}
	f.touch(is, by, "issue_updated", items)
}

// Transition moves the issue to a status: "To Do", "In Progress" or
// "Done" (which sets resolution and resolutiondate; leaving it clears
// them), as an issue_updated event.
func (f *Fake) Transition(key string, by User, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.mustIssue(key)
	from := is.fields["status"].(map[string]any)
	items := []map[string]any{{"field": "status", "fieldtype": "jira", "fieldId": "status",
		"from": from["id"], "fromString": from["name"], "to": statusID(status), "toString": status}}
	f.setStatus(is, status)
	if status == "Done" && is.fields["resolution"] == nil {
		items = append(items, map[string]any{"field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
			"from": nil, "fromString": nil, "to": "10000", "toString": "Done"})
		is.fields["resolution"] = map[string]any{"id": "10000", "name": "Done"}
		is.fields["resolutiondate"] = f.now.Add(time.Minute).Format(TimeLayout)
	} else if status != "Done" && is.fields["resolution"] != nil {
		items = append(items, map[string]any{"field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
			"from": "10000", "fromString": "Done", "to": nil, "toString": nil})
		is.fields["resolution"] = nil
		is.fields["resolutiondate"] = nil
	}
	f.touch(is, by, "issue_generic", items)
}

func statusID(name string) string {
	switch name {
	case "To Do":
		return "10000"
	case "In Progress":
		return "3"
	case "Done":
		return "10001"
	}
	return "1"
}

func (f *Fake) setStatus(is *issue, name string) {
	key, catName := "indeterminate", "In Progress"
	switch name {
	case "To Do":
		key, catName = "new", "To Do"
	case "Done":
		key, catName = "done", "Done"
	}
	if n, ok := f.opts.CategoryNames[key]; ok {
		catName = n
	}
	is.fields["status"] = map[string]any{"name": name, "id": statusID(name),
		"statusCategory": map[string]any{"key": key, "name": catName}}
}

// touch records a history (if any items), bumps updated and queues jira:issue_updated.
func (f *Fake) touch(is *issue, by User, eventType string, items []map[string]any) {
	at := f.tick()
	is.fields["updated"] = at.Format(TimeLayout)
	var changelog map[string]any
	if len(items) > 0 {
		h := map[string]any{"id": f.nextID(), "author": userJSON(by), "created": at.Format(TimeLayout), "items": items}
		is.histories = append(is.histories, h)
		changelog = map[string]any{"id": h["id"], "items": items}
	}
	f.queueIssueEvent("jira:issue_updated", eventType, is, by, changelog)
}

func changeItem(field string, from, to any) map[string]any {
	return map[string]any{"field": field, "fieldtype": fieldType(field), "fieldId": field,
		"from": idOf(from), "fromString": display(from), "to": idOf(to), "toString": display(to)}
}

func fieldType(id string) string {
	if strings.HasPrefix(id, "customfield_") {
		return "custom"
	}
	return "jira"
}

func idOf(v any) any {
	if m, ok := v.(map[string]any); ok {
		for _, k := range []string{"accountId", "id"} {
			if s, ok := m[k]; ok {
				return s
			}
		}
	}
	return nil
}

// display is the changelog's display string of a value.
func display(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return x
	case map[string]any:
		for _, k := range []string{"displayName", "name", "value"} {
			if s, ok := x[k].(string); ok {
				return s
			}
		}
		if x["type"] == "doc" {
			return "(description)"
		}
	case []string:
		return strings.Join(x, " ")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// SetSLA sets an SLA custom field to an ongoing cycle with the given
// elapsed time and goal. It is silent, as in Jira: the SLA clock runs
// without an event and without changing updated.
func (f *Fake) SetSLA(key, fieldID string, elapsed, goal time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.mustIssue(key)
	start := f.now.Add(-elapsed)
	is.fields[fieldID] = map[string]any{
		"id": "1", "name": "Time to first response",
		"_links":          map[string]any{"self": f.srv.URL + "/rest/servicedeskapi/request/" + is.id + "/sla/1"},
		"completedCycles": []any{},
		"ongoingCycle": map[string]any{
			"startTime":  map[string]any{"epochMillis": start.UnixMilli(), "jira": start.Format(TimeLayout)},
			"breachTime": map[string]any{"epochMillis": start.Add(goal).UnixMilli()},
			"breached":   elapsed > goal, "paused": false, "withinCalendarHours": true,
			"goalDuration":  map[string]any{"millis": goal.Milliseconds(), "friendly": goal.String()},
			"elapsedTime":   map[string]any{"millis": elapsed.Milliseconds(), "friendly": elapsed.String()},
			"remainingTime": map[string]any{"millis": (goal - elapsed).Milliseconds(), "friendly": (goal - elapsed).String()},
		},
		"slaDisplayFormat": "NEW_SLA_FORMAT",
	}
}

// AddComment adds a comment (public: jsdPublic, a bool, or any other
// value to test the "only a JSON boolean" rule) and queues comment_created
// and jira:issue_updated (issue_commented). It returns the comment id.
func (f *Fake) AddComment(key string, by User, text string, public any) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.mustIssue(key)
	at := f.tick()
	c := &comment{id: f.nextID(), author: by, updateAuthor: by, text: text, created: at, updated: at, public: public}
	is.comments = append(is.comments, c)
	is.fields["updated"] = at.Format(TimeLayout)
	f.queueCommentEvent("comment_created", is, c)
	f.queueIssueEvent("jira:issue_updated", "issue_commented", is, by, nil)
	return c.id
}

// AddComments adds n comments "comment 1".."comment n" without queueing
// events, for threads longer than a page.
func (f *Fake) AddComments(key string, by User, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.mustIssue(key)
	for i := range n {
		at := f.tick()
		is.comments = append(is.comments, &comment{id: f.nextID(), author: by, updateAuthor: by,
			text: fmt.Sprintf("comment %d", i+1), created: at, updated: at, public: true})
		is.fields["updated"] = at.Format(TimeLayout)
	}
}

// EditComment changes a comment's text and queues comment_updated.
func (f *Fake) EditComment(key, id string, by User, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.mustIssue(key)
	i := slices.IndexFunc(is.comments, func(c *comment) bool { return c.id == id })
	if i < 0 {
		panic("jirafake: no comment " + id)
	}
	c := is.comments[i]
	c.text, c.updateAuthor, c.updated = text, by, f.tick()
	is.fields["updated"] = c.updated.Format(TimeLayout)
	f.queueCommentEvent("comment_updated", is, c)
}

// DeleteComment removes a comment and queues comment_deleted.
func (f *Fake) DeleteComment(key, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleteComment(key, id, true)
}

func (f *Fake) deleteComment(key, id string, notify bool) {
	is := f.mustIssue(key)
	i := slices.IndexFunc(is.comments, func(c *comment) bool { return c.id == id })
	if i < 0 {
		panic("jirafake: no comment " + id)
	}
	c := is.comments[i]
	is.comments = slices.Delete(is.comments, i, i+1)
	at := f.tick()
	is.fields["updated"] = at.Format(TimeLayout)
	if notify {
		f.queueCommentEvent("comment_deleted", is, c)
	}
}

// CommentIDs lists an issue's comment ids, oldest first.
func (f *Fake) CommentIDs(key string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.mustIssue(key).comments {
		out = append(out, c.id)
	}
	return out
}

// Attach adds an attachment, records an "Attachment" history and queues
// attachment_created (no issue in the body) and jira:issue_updated. It
// returns the attachment id.
func (f *Fake) Attach(key string, by User, filename, mime string, data []byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.mustIssue(key)
	a := &attachment{id: f.nextID(), issueKey: key, filename: filename, mime: mime, author: by, created: f.now.Add(time.Minute), data: data}
	f.attachments[a.id] = a
	is.attachments = append(is.attachments, a.id)
	f.queue("attachment_created", "Primary", map[string]any{"attachment": f.attachmentJSON(a)})
	f.touch(is, by, "issue_updated", []map[string]any{{"field": "Attachment", "fieldtype": "jira",
		"from": nil, "fromString": nil, "to": a.id, "toString": filename}})
	return a.id
}

// DeleteAttachment removes an attachment and queues attachment_deleted and jira:issue_updated.
func (f *Fake) DeleteAttachment(id string, by User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.attachments[id]
	if a == nil {
		panic("jirafake: no attachment " + id)
	}
	is := f.mustIssue(a.issueKey)
	delete(f.attachments, id)
	is.attachments = slices.DeleteFunc(is.attachments, func(x string) bool { return x == id })
	f.queue("attachment_deleted", "Primary", map[string]any{"attachment": f.attachmentJSON(a)})
	f.touch(is, by, "issue_updated", []map[string]any{{"field": "Attachment", "fieldtype": "jira",
		"from": a.id, "fromString": a.filename, "to": nil, "toString": nil}})
}

// Link links two issues (outward "blocks" inward for Blocks), records a
// "Link" history on both and queues issuelink_created (ids only, no keys)
// and jira:issue_updated for both. It returns the link id.
func (f *Fake) Link(typ, outwardKey, inwardKey string, by User) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out, in := f.mustIssue(outwardKey), f.mustIssue(inwardKey)
	l := &link{id: f.nextID(), typ: typ, outward: outwardKey, inward: inwardKey}
	f.links[l.id] = l
	out.links = append(out.links, l.id)
	in.links = append(in.links, l.id)
	f.queue("issuelink_created", "Primary", map[string]any{"issueLink": f.linkEventJSON(l)})
	inT, outT := linkTypes(typ)
	f.touch(out, by, "issue_updated", []map[string]any{{"field": "Link", "fieldtype": "jira",
		"from": nil, "fromString": nil, "to": inwardKey, "toString": "This issue " + outT + " " + inwardKey}})
	f.touch(in, by, "issue_updated", []map[string]any{{"field": "Link", "fieldtype": "jira",
		"from": nil, "fromString": nil, "to": outwardKey, "toString": "This issue " + inT + " " + outwardKey}})
	return l.id
}

// LinkSilently links two issues like Link but queues only
// issuelink_created: the link's issue_updated events are lost.
func (f *Fake) LinkSilently(typ, outwardKey, inwardKey string) string {
	f.mu.Lock()
	before := len(f.outbox)
	f.mu.Unlock()
	id := f.Link(typ, outwardKey, inwardKey, Agent)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outbox = append(f.outbox[:before], slices.DeleteFunc(f.outbox[before:], func(d Delivery) bool { return d.Event == "jira:issue_updated" })...)
	return id
}

// Unlink removes a link and queues issuelink_deleted.
func (f *Fake) Unlink(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.links[id]
	if l == nil {
		panic("jirafake: no link " + id)
	}
	f.unlink(l, "Primary")
}

func (f *Fake) unlink(l *link, flow string) {
	delete(f.links, l.id)
	for _, k := range []string{l.outward, l.inward} {
		if is := f.issues[k]; is != nil {
			is.links = slices.DeleteFunc(is.links, func(x string) bool { return x == l.id })
		}
	}
	f.queue("issuelink_deleted", flow, map[string]any{"issueLink": f.linkEventJSON(l)})
}

func linkTypes(typ string) (inward, outward string) {
	switch typ {
	case "Blocks":
		return "is blocked by", "blocks"
	case "Duplicate":
		return "is duplicated by", "duplicates"
	}
	return "relates to", "relates to"
}

// AddRemoteLink adds a remote link (Jira sends no webhook for these). It
// returns the remote link's numeric id.
func (f *Fake) AddRemoteLink(key, url, title string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.mustIssue(key)
	id, _ := strconv.Atoi(f.nextID())
	is.remote = append(is.remote, map[string]any{
		"id": id, "self": f.srv.URL + "/rest/api/3/issue/" + key + "/remotelink/" + strconv.Itoa(id),
		"globalId": "system=" + url, "relationship": "mentioned in",
		"application": map[string]any{"type": "com.atlassian.confluence", "name": "Confluence"},
		"object": map[string]any{"url": url, "title": title, "summary": "",
			"icon": map[string]any{"url16x16": "https://wiki.example.com/favicon.ico"}, "status": map[string]any{"resolved": false}},
	})
	return id
}

// DeleteIssue deletes an issue: jira:issue_deleted (Primary) with the issue
// as it was, then the cascade as Secondary: comment_deleted,
// attachment_deleted and issuelink_deleted.
func (f *Fake) DeleteIssue(key string, by User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.mustIssue(key)
	f.tick()
	f.queueIssueEvent("jira:issue_deleted", "issue_deleted", is, by, nil)
	is.deleted = true
	for _, c := range is.comments {
		f.queueCommentEventFlow("comment_deleted", "Secondary", is, c)
	}
	for _, id := range is.attachments {
		f.queue("attachment_deleted", "Secondary", map[string]any{"attachment": f.attachmentJSON(f.attachments[id])})
		delete(f.attachments, id)
	}
	for _, id := range slices.Clone(is.links) {
		f.unlink(f.links[id], "Secondary")
	}
	delete(f.byID, is.id)
}

// Keys lists the live issue keys in creation order.
func (f *Fake) Keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.liveKeys()
}

func (f *Fake) liveKeys() []string {
	var out []*issue
	for _, is := range f.issues {
		if !is.deleted {
			out = append(out, is)
		}
	}
	slices.SortFunc(out, func(a, b *issue) int {
		ai, _ := strconv.Atoi(a.id)
		bi, _ := strconv.Atoi(b.id)
		return ai - bi
	})
	keys := make([]string, len(out))
	for i, is := range out {
		keys[i] = is.key
	}
	return keys
}

// IssueID returns the numeric id of an issue.
func (f *Fake) IssueID(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mustIssue(key).id
}

func userJSON(u User) map[string]any {
	m := map[string]any{"accountId": u.AccountID, "displayName": u.Name, "active": true}
	if u.Email != "" {
		m["emailAddress"] = u.Email
	}
	return m
}

// adfText is a one-paragraph ADF document, or nil for "".
func adfText(s string) any {
	if s == "" {
		return nil
	}
	return map[string]any{"type": "doc", "version": 1, "content": []any{
		map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": s}}}}}
}
