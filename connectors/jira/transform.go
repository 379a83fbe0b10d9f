package jira

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/agnesdata/agnes/connectors/extract"
)

// The six tables, in the order Apply writes them: issues last, so that a
// failure part-way leaves the issue row as it was and the next refetch
// (or the poll) redoes the rest.
const (
	tComments = iota
	tAttachments
	tChangelog
	tIssueLinks
	tRemoteLinks
	tIssues
	numTables
)

// Tables are the names of the six tables, indexed like the constants above.
var Tables = [numTables]string{"comments", "attachments", "changelog", "issuelinks", "remote_links", "issues"}

var tableDescriptions = [numTables]string{
	"Jira comments: one row per comment of every issue (complete threads), body as plain text.",
	"Jira attachments: one row per attachment (metadata; local_path when the file was downloaded).",
	"Jira changelog: one row per changed field of every history entry (the full history).",
	"Jira issue links: one row per link on each issue (the other end has its own row).",
	"Jira remote links: one row per remote link of each issue (URL, title, application).",
	"Jira issues: one row per issue, with status, people, dates, counts, service-desk fields and SLA fields.",
}

const (
	typString = "VARCHAR"
	typTime   = "TIMESTAMPTZ" // Parquet timestamp(us, UTC)
	typInt    = "BIGINT"
	typBool   = "BOOLEAN"
)

func cols(spec ...string) []extract.Column {
	out := make([]extract.Column, 0, len(spec))
	for _, s := range spec {
		name, typ, _ := strings.Cut(s, " ")
		if typ == "" {
			typ = typString
		}
		out = append(out, extract.Column{Name: name, Type: typ})
	}
	return out
}

var fixedColumns = [numTables][]extract.Column{
	tComments: cols("comment_id", "issue_key", "author_email", "author_name", "body", "created_at "+typTime,
		"updated_at "+typTime, "update_author_email", "public_visibility "+typBool),
	tAttachments: cols("attachment_id", "issue_key", "filename", "local_path", "hierarchical_path", "size_bytes "+typInt,
		"mime_type", "author_email", "created_at "+typTime, "content_url", "thumbnail_url"),
	tChangelog: cols("change_id", "issue_key", "author_email", "author_name", "field_name", "field_type",
		"from_value", "to_value", "changed_at "+typTime),
	tIssueLinks: cols("issue_key", "link_id", "link_type", "direction", "linked_issue_key", "linked_issue_summary",
		"linked_issue_status", "linked_issue_priority"),
	tRemoteLinks: cols("issue_key", "remote_link_id", "url", "title", "application_name", "application_type"),
	tIssues: cols("issue_key", "issue_id", "issue_url", "summary", "description", "issue_type", "status", "priority",
		"resolution", "status_category", "project_key", "project_name", "creator_email", "creator_name",
		"reporter_email", "reporter_name", "assignee_email", "assignee_name", "created_at "+typTime,
		"updated_at "+typTime, "resolved_at "+typTime, "due_date", "labels", "attachment_count "+typInt,
		"issuelink_count "+typInt, "comment_count "+typInt, "request_type", "request_status", "severity", "spam",
		"slack_link", "technical_issue_category", "email_address", "l3_team", "triage", "configuration_item",
		"organizations", "organization_ids", "participants", "context", "custom_url", "satisfaction "+typInt,
		"_synced_at", "_raw_file"),
}

// issueBaseColumns are the 44 fixed columns of issues.
func issueBaseColumns() []string {
	out := make([]string, len(fixedColumns[tIssues]))
	for i, c := range fixedColumns[tIssues] {
		out[i] = c.Name
	}
	return out
}

// columns are the tables' columns under this configuration: issues gains
// one string column per SLA field.
func (c config) columns() [numTables][]extract.Column {
	out := fixedColumns
	out[tIssues] = append(append([]extract.Column{}, fixedColumns[tIssues]...), c.slaColumns()...)
	return out
}

func (c config) slaColumns() []extract.Column {
	out := make([]extract.Column, len(c.sla))
	for i, f := range c.sla {
		out[i] = extract.Column{Name: f.column, Type: typString}
	}
	return out
}

// row is one table row, one value per column.
type row []any

// issueRows is what one issue contributes to the six tables.
type issueRows struct {
	key       string
	month     string // partition: the month of created in Jira's own offset
	rows      [numTables][]row
	known     [numTables]bool // false: Jira would not say; keep the stored rows
	fetchedAt time.Time
}

// statusCategoryNames name the status categories by key, so that Done is
// decided by statusCategory.key and status_category reads the same in
// every language (Jira localises the name).
var statusCategoryNames = map[string]string{
	"new": "To Do", "indeterminate": "In Progress", "done": "Done", "undefined": "No Category",
}

// issueFields are the standard fields the transform reads.
type issueFields struct {
	Summary     *string         `json:"summary"`
	Description json.RawMessage `json:"description"`
	IssueType   *named          `json:"issuetype"`
	Priority    *named          `json:"priority"`
	Resolution  *named          `json:"resolution"`
	Status      *struct {
		Name     string `json:"name"`
		Category *struct {
			Key  string `json:"key"`
			Name string `json:"name"`
		} `json:"statusCategory"`
	} `json:"status"`
	Project *struct {
		Key  string `json:"key"`
		Name string `json:"name"`
	} `json:"project"`
	Creator        *User        `json:"creator"`
	Reporter       *User        `json:"reporter"`
	Assignee       *User        `json:"assignee"`
	Created        string       `json:"created"`
	Updated        string       `json:"updated"`
	ResolutionDate string       `json:"resolutiondate"`
	DueDate        *string      `json:"duedate"`
	Labels         []string     `json:"labels"`
	Attachment     []attachment `json:"attachment"`
	IssueLinks     []issueLink  `json:"issuelinks"`
}

type named struct {
	Name string `json:"name"`
}

type attachment struct {
	ID        string `json:"id"`
	Filename  string `json:"filename"`
	Author    *User  `json:"author"`
	Created   string `json:"created"`
	Size      *int64 `json:"size"`
	MimeType  string `json:"mimeType"`
	Content   string `json:"content"`
	Thumbnail string `json:"thumbnail"`
}

type linkedIssue struct {
	Key    string `json:"key"`
	Fields struct {
		Summary  *string `json:"summary"`
		Status   *named  `json:"status"`
		Priority *named  `json:"priority"`
	} `json:"fields"`
}

type issueLink struct {
	ID           string       `json:"id"`
	Type         *named       `json:"type"`
	InwardIssue  *linkedIssue `json:"inwardIssue"`
	OutwardIssue *linkedIssue `json:"outwardIssue"`
}

// transform maps one fetched issue to its rows. attachmentsDir is where
// downloaded attachments live ("" when downloads are off).
func (c config) transform(d *IssueData, attachmentsDir string) (*issueRows, error) {
	var f issueFields
	if err := json.Unmarshal(d.Fields, &f); err != nil {
		return nil, fmt.Errorf("jira issue %s: fields: %w", d.Key, err)
	}
	var custom map[string]json.RawMessage
	if err := json.Unmarshal(d.Fields, &custom); err != nil {
		return nil, fmt.Errorf("jira issue %s: fields: %w", d.Key, err)
	}
	out := &issueRows{key: d.Key, month: month(f.Created, d.FetchedAt), fetchedAt: d.FetchedAt}
	for t := range out.known {
		out.known[t] = true
	}
	key := d.Key

	for _, cm := range d.Comments {
		out.rows[tComments] = append(out.rows[tComments], row{
			cm.ID, key, email(cm.Author), name(cm.Author), ADFText(cm.Body), ts(cm.Created), ts(cm.Updated),
			email(cm.UpdateAuthor), jsonBool(cm.JSDPublic),
		})
	}
	for _, a := range f.Attachment {
		var size any
		if a.Size != nil {
			size = *a.Size
		}
		out.rows[tAttachments] = append(out.rows[tAttachments], row{
			a.ID, key, a.Filename, localPath(attachmentsDir, key, a), hierarchicalPath(key, a),
			size, nullStr(a.MimeType), email(a.Author), ts(a.Created), nullStr(a.Content), nullStr(a.Thumbnail),
		})
	}
	for _, h := range d.Histories {
		for _, it := range h.Items {
			out.rows[tChangelog] = append(out.rows[tChangelog], row{
				h.ID, key, email(h.Author), name(h.Author), it.Field, nullStr(it.FieldType),
				strPtr(it.FromString), strPtr(it.ToString), ts(h.Created),
			})
		}
	}
	for _, l := range f.IssueLinks {
		dir, other := "outward", l.OutwardIssue
		if l.InwardIssue != nil {
			dir, other = "inward", l.InwardIssue
		}
		r := row{key, l.ID, nameOf(l.Type), dir, nil, nil, nil, nil}
		if other != nil {
			r[4], r[5], r[6], r[7] = other.Key, strPtr(other.Fields.Summary), nameOf(other.Fields.Status), nameOf(other.Fields.Priority)
		}
		out.rows[tIssueLinks] = append(out.rows[tIssueLinks], r)
	}
	out.known[tRemoteLinks] = d.RemoteLinksKnown
	for _, rl := range d.RemoteLinks {
		id, _ := str(rl.ID)
		out.rows[tRemoteLinks] = append(out.rows[tRemoteLinks], row{
			key, id, nullStr(rl.Object.URL), nullStr(rl.Object.Title), nullStr(rl.Application.Name), nullStr(rl.Application.Type),
		})
	}

	var status, category any
	if f.Status != nil {
		status = nullStr(f.Status.Name)
		if cat := f.Status.Category; cat != nil {
			if n, ok := statusCategoryNames[cat.Key]; ok {
				category = n
			} else {
				category = nullStr(cat.Name)
			}
		}
	}
	var projectKey, projectName any
	if f.Project != nil {
		projectKey, projectName = nullStr(f.Project.Key), nullStr(f.Project.Name)
	}
	labels := f.Labels
	if labels == nil {
		labels = []string{}
	}
	cf := func(col string) json.RawMessage { return custom[c.custom[col]] }
	requestType, requestStatus := request(cf("request"))
	orgNames, orgIDs := organizations(cf("organizations"))
	commentCount := int64(d.CommentTotal)
	issue := row{
		key, d.ID, c.browseURL(key), strPtr(f.Summary), ADFText(f.Description),
		nameOf(f.IssueType), status, nameOf(f.Priority), nameOf(f.Resolution), category,
		projectKey, projectName,
		email(f.Creator), name(f.Creator), email(f.Reporter), name(f.Reporter), email(f.Assignee), name(f.Assignee),
		ts(f.Created), ts(f.Updated), ts(f.ResolutionDate), strPtr(f.DueDate), mustPyJSON(labels),
		int64(len(f.Attachment)), int64(len(f.IssueLinks)), commentCount,
		requestType, requestStatus,
		option(cf("severity")), option(cf("spam")), option(cf("slack_link")),
		option(cf("technical_issue_category")), option(cf("email_address")), option(cf("l3_team")),
		optionList(cf("triage")), optionList(cf("configuration_item")), orgNames, orgIDs,
		participants(cf("participants")), nullStr(ADFText(cf("context"))), rawText(cf("custom_url")),
		satisfaction(cf("satisfaction")),
		syncedAt(d.FetchedAt), nil,
	}
	for _, sf := range c.sla {
		issue = append(issue, rawText(custom[sf.id]))
	}
	out.rows[tIssues] = []row{issue}
	return out, nil
}

// browseURL is the issue's page on the site.
func (c config) browseURL(key string) string {
	if c.Domain != "" {
		return "https://" + strings.ToLower(c.Domain) + "/browse/" + key
	}
	return c.site.String() + "/browse/" + key
}

// syncedAt formats the fetch time as Python's isoformat of a UTC time.
func syncedAt(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000") + "+00:00"
}

// parseSyncedAt reads _synced_at back.
func parseSyncedAt(s string) (time.Time, error) {
	return time.Parse("2006-01-02T15:04:05.000000-07:00", s)
}

// Jira timestamps: 2026-02-03T12:06:52.829+0100, also without fraction or with a colon.
var timeLayouts = []string{"2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05-0700", time.RFC3339Nano}

func parseTime(s string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a Jira timestamp", s)
}

// ts is a timestamp column value: UTC, fractional seconds stripped; NULL
// when empty or unreadable.
func ts(s string) any {
	if s == "" {
		return nil
	}
	t, err := parseTime(s)
	if err != nil {
		return nil
	}
	return t.UTC().Truncate(time.Second)
}

// month is the partition of an issue: the month of created in the offset
// Jira wrote it in (not UTC), or of fallback when created is unreadable.
func month(created string, fallback time.Time) string {
	if t, err := parseTime(created); err == nil {
		return t.Format("2006-01")
	}
	return fallback.UTC().Format("2006-01")
}

func email(u *User) any {
	if u == nil {
		return nil
	}
	return nullStr(u.Email)
}

func name(u *User) any {
	if u == nil {
		return nil
	}
	return nullStr(u.Name)
}

func nameOf(n *named) any {
	if n == nil {
		return nil
	}
	return nullStr(n.Name)
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func strPtr(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// jsonBool is a JSON boolean, or NULL for anything else (never coerced).
func jsonBool(raw json.RawMessage) any {
	switch string(bytes.TrimSpace(raw)) {
	case "true":
		return true
	case "false":
		return false
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// option reads a select-like value: .value, else .name, else the value
// itself as text.
func option(raw json.RawMessage) any {
	if isNull(raw) {
		return nil
	}
	var o struct {
		Value *json.RawMessage `json:"value"`
		Name  *json.RawMessage `json:"name"`
	}
	if raw[0] == '{' && json.Unmarshal(raw, &o) == nil {
		for _, v := range []*json.RawMessage{o.Value, o.Name} {
			if v != nil && !isNull(*v) {
				return scalarText(*v)
			}
		}
	}
	return scalarText(raw)
}

// scalarText is Python's str() of a JSON scalar; objects and lists as JSON text.
func scalarText(raw json.RawMessage) string {
	var v any
	_ = json.Unmarshal(raw, &v)
	switch x := v.(type) {
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case float64:
		return strings.TrimSpace(string(raw))
	}
	s, err := pyJSON(raw)
	if err != nil {
		return string(raw)
	}
	return s
}

// optionList is the JSON list of a multi-select's option values.
func optionList(raw json.RawMessage) any {
	if isNull(raw) {
		return nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		items = []json.RawMessage{raw}
	}
	vals := make([]string, 0, len(items))
	for _, it := range items {
		if v, ok := option(it).(string); ok {
			vals = append(vals, v)
		}
	}
	return mustPyJSON(vals)
}

// request reads the JSM request type field: requestType.name and currentStatus.status.
func request(raw json.RawMessage) (any, any) {
	var r struct {
		RequestType *named `json:"requestType"`
		Current     *struct {
			Status string `json:"status"`
		} `json:"currentStatus"`
	}
	if isNull(raw) || json.Unmarshal(raw, &r) != nil {
		return nil, nil
	}
	var status any
	if r.Current != nil {
		status = nullStr(r.Current.Status)
	}
	return nameOf(r.RequestType), status
}

// organizations reads the JSM organizations field: names and ids as JSON lists.
func organizations(raw json.RawMessage) (any, any) {
	var orgs []struct {
		ID   json.RawMessage `json:"id"`
		Name string          `json:"name"`
	}
	if isNull(raw) || json.Unmarshal(raw, &orgs) != nil {
		return nil, nil
	}
	names, ids := make([]string, 0, len(orgs)), make([]string, 0, len(orgs))
	for _, o := range orgs {
		names = append(names, o.Name)
		id, _ := str(o.ID)
		ids = append(ids, id)
	}
	return mustPyJSON(names), mustPyJSON(ids)
}

// participants is the JSON list of the visible emails of the request participants.
func participants(raw json.RawMessage) any {
	var users []User
	if isNull(raw) || json.Unmarshal(raw, &users) != nil {
		return nil
	}
	emails := make([]string, 0, len(users))
	for _, u := range users {
		if u.Email != "" {
			emails = append(emails, u.Email)
		}
	}
	return mustPyJSON(emails)
}

func satisfaction(raw json.RawMessage) any {
	var s struct {
		Rating *json.Number `json:"rating"`
	}
	if isNull(raw) || json.Unmarshal(raw, &s) != nil || s.Rating == nil {
		return nil
	}
	n, err := strconv.ParseInt(s.Rating.String(), 10, 64)
	if err != nil {
		return nil
	}
	return n
}

// rawText stores a field verbatim: a string as itself, anything else as
// JSON text; NULL when absent or null.
func rawText(raw json.RawMessage) any {
	if isNull(raw) {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	t, err := pyJSON(raw)
	if err != nil {
		return nil
	}
	return t
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// attachmentFile is the file name an attachment is stored under: <id>_<filename>.
func attachmentFile(a attachment) string {
	name := path.Base(strings.ReplaceAll(a.Filename, `\`, "/"))
	name = strings.TrimLeft(unsafeName.ReplaceAllString(name, "_"), ".")
	if name == "" {
		name = "file"
	}
	if len(name) > 120 {
		name = name[len(name)-120:]
	}
	return a.ID + "_" + name
}

// localPath is the downloaded file's path if it is on disk, complete.
func localPath(dir, key string, a attachment) any {
	if dir == "" || !idRE.MatchString(a.ID) {
		return nil
	}
	file := filepath.Join(dir, key, attachmentFile(a))
	st, err := os.Stat(file)
	if err != nil || (a.Size != nil && st.Size() != *a.Size) {
		return nil
	}
	return file
}

// hierarchicalPath spreads files over folders by issue number:
// SUP-14991 → 14/991/<id>_<filename>.
func hierarchicalPath(key string, a attachment) any {
	_, num, _ := strings.Cut(key, "-")
	n, err := strconv.Atoi(num)
	if err != nil {
		return nil
	}
	return fmt.Sprintf("%d/%03d/%s", n/1000, n%1000, attachmentFile(a))
}
