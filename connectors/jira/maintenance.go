package jira

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/agnesdata/agnes/connectors/extract"
)

// StoredIssue is what the store holds of one issue, for the safety nets.
type StoredIssue struct {
	Key, ID, Project string
	StatusCategory   string // "" when unknown
	Updated          time.Time
	SyncedAt         time.Time
	sla              []any // the SLA columns, as stored
}

// Issues lists the stored issues.
func (st *Store) Issues(ctx context.Context) ([]StoredIssue, error) {
	from, err := st.readAll(tIssues)
	if err != nil || from == "" {
		return nil, err
	}
	have, err := st.describe(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("jira: read issues: %w", err)
	}
	sel := []string{"issue_key", "issue_id", "project_key", "status_category", "updated_at", "_synced_at"}
	for _, f := range st.src.cfg.sla {
		if have[f.column] {
			sel = append(sel, "CAST("+quoteIdent(f.column)+" AS VARCHAR)")
		} else {
			sel = append(sel, "NULL::VARCHAR")
		}
	}
	rows, err := st.db.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+from+" ORDER BY issue_key")
	if err != nil {
		return nil, fmt.Errorf("jira: read issues: %w", err)
	}
	defer rows.Close()
	var out []StoredIssue
	for rows.Next() {
		var key string
		var id, project, cat, synced *string
		var updated *time.Time
		vals := make([]any, len(st.src.cfg.sla))
		dest := []any{&key, &id, &project, &cat, &updated, &synced}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("jira: read issues: %w", err)
		}
		is := StoredIssue{Key: key, ID: deref(id), Project: deref(project), StatusCategory: deref(cat), sla: vals}
		if updated != nil {
			is.Updated = *updated
		}
		if synced != nil {
			is.SyncedAt, _ = parseSyncedAt(*synced)
		}
		out = append(out, is)
	}
	return out, rows.Err()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// describe returns the column names of a relation.
func (st *Store) describe(ctx context.Context, from string) (map[string]bool, error) {
	rows, err := st.db.QueryContext(ctx, "SELECT column_name FROM (DESCRIBE SELECT * FROM "+from+")")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		have[name] = true
	}
	return have, rows.Err()
}

// BackfillOptions bound a backfill; zero values take the settings'.
type BackfillOptions struct {
	Project string // project key, e.g. SUP
	Since   string // created on or after, YYYY-MM-DD
	// BatchSize is how many issues are fetched and applied at a time (default 100).
	BatchSize int
	// Progress, if set, is called after each batch.
	Progress func(done, total int)
}

// Backfill loads every issue of a project created since a date (JQL via
// search/jql, oldest first) through the same path as webhooks: refetch
// and Apply, a batch at a time, so it merges with what is stored and its
// result equals the incremental state. Issues that could not be fetched
// are reported in a *FetchError after the rest is applied. The returned
// Result's Tables are the ones to publish.
func (st *Store) Backfill(ctx context.Context, w *extract.Writer, opt BackfillOptions) (Result, error) {
	if opt.Project == "" {
		opt.Project = st.src.cfg.Project
	}
	if opt.Since == "" {
		opt.Since = st.src.cfg.Since
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 100
	}
	jql, err := st.src.backfillJQL(opt.Project, opt.Since)
	if err != nil {
		return Result{}, err
	}
	hits, err := st.src.Search(ctx, jql)
	if err != nil {
		return Result{}, fmt.Errorf("jira backfill: %w", err)
	}
	keys := make([]string, len(hits))
	for i, h := range hits {
		keys[i] = h.Key
	}
	var total Result
	failed := map[string]error{}
	for start := 0; start < len(keys); start += opt.BatchSize {
		batch := keys[start:min(len(keys), start+opt.BatchSize)]
		changes, ferr := st.Refetch(ctx, batch)
		var fe *FetchError
		if errors.As(ferr, &fe) {
			for k, e := range fe.Failed {
				failed[k] = e
			}
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
		res, err := st.Apply(ctx, w, changes)
		if err != nil {
			return total, fmt.Errorf("jira backfill: %w", err)
		}
		total.merge(res)
		if opt.Progress != nil {
			opt.Progress(min(len(keys), start+opt.BatchSize), len(keys))
		}
	}
	if len(failed) > 0 {
		return total, fmt.Errorf("jira backfill: %w", &FetchError{Failed: failed})
	}
	return total, nil
}

// merge adds another Apply's outcome; a table's latest row wins.
func (r *Result) merge(o Result) {
	for _, t := range o.Tables {
		if i := slices.IndexFunc(r.Tables, func(x extract.Table) bool { return x.TableName == t.TableName }); i >= 0 {
			r.Tables[i] = t
		} else {
			r.Tables = append(r.Tables, t)
		}
	}
	r.Upserted = append(r.Upserted, o.Upserted...)
	r.Deleted = append(r.Deleted, o.Deleted...)
	r.Refreshed = append(r.Refreshed, o.Refreshed...)
	r.Stale = append(r.Stale, o.Stale...)
}

// Window is a span of recent time, as durations before now: {From: 30
// days, To: 5 minutes} is "updated between 30 days and 5 minutes ago"
// (the last minutes are left to the webhooks in flight).
type Window struct{ From, To time.Duration }

// Discrepancies are the differences between Jira and the store.
type Discrepancies struct {
	Missing  []string // Jira has them, the store does not: lost webhooks
	Outdated []string // Jira updated them after the stored copy: lost update webhooks
	Gone     []string // stored and updated in the window, but Jira no longer lists them
}

// Keys are all the keys to refetch, missing first.
func (d Discrepancies) Keys() []string {
	return slices.Concat(d.Missing, d.Outdated, d.Gone)
}

// Check compares the configured project's issues updated in the window
// (JQL with relative dates, so Jira's own clock and the API user's time
// zone apply) with the stored issues of that project.
func (st *Store) Check(ctx context.Context, win Window) (Discrepancies, error) {
	p := st.src.cfg.Project
	if p == "" {
		return Discrepancies{}, fmt.Errorf("jira consistency check: set project (JIRA_PROJECT)")
	}
	if win.From <= win.To || win.To < 0 {
		return Discrepancies{}, fmt.Errorf("jira consistency check: window from %v ago to %v ago is empty", win.From, win.To)
	}
	jql := fmt.Sprintf("project = %s AND updated >= %s AND updated <= %s ORDER BY updated ASC",
		quoteJQL(p), quoteJQL(relative(win.From)), quoteJQL(relative(win.To)))
	hits, err := st.src.Search(ctx, jql)
	if err != nil {
		return Discrepancies{}, fmt.Errorf("jira consistency check: %w", err)
	}
	stored, err := st.Issues(ctx)
	if err != nil {
		return Discrepancies{}, fmt.Errorf("jira consistency check: %w", err)
	}
	byKey := map[string]StoredIssue{}
	for _, s := range stored {
		byKey[s.Key] = s
	}
	var d Discrepancies
	listed := map[string]bool{}
	for _, h := range hits {
		listed[h.Key] = true
		s, ok := byKey[h.Key]
		switch {
		case !ok:
			d.Missing = append(d.Missing, h.Key)
		case s.Updated.Before(h.Updated.Truncate(time.Second)):
			d.Outdated = append(d.Outdated, h.Key)
		}
	}
	now := st.src.now()
	for _, s := range stored {
		inWindow := !s.Updated.Before(now.Add(-win.From)) && !s.Updated.After(now.Add(-win.To))
		if s.Project == p && inWindow && !listed[s.Key] {
			d.Gone = append(d.Gone, s.Key)
		}
	}
	return d, nil
}

// relative is a JQL relative date: "-43200m".
func relative(d time.Duration) string { return fmt.Sprintf("-%dm", int(d.Minutes())) }

// Repair is the outcome of a consistency repair.
type Repair struct {
	Discrepancies
	Repaired   []string // refetched and applied (including those Jira said are gone)
	Unrepaired []string // over the limit or failed; the next run takes them
	Result     Result
}

// Repair runs Check and refetches and applies up to limit of the keys it
// found (limit ≤ 0: all). What is left over is reported, not dropped: the
// next run repairs it. The Result's Tables are the ones to publish.
func (st *Store) Repair(ctx context.Context, w *extract.Writer, win Window, limit int) (Repair, error) {
	d, err := st.Check(ctx, win)
	if err != nil {
		return Repair{}, err
	}
	rep := Repair{Discrepancies: d}
	keys := d.Keys()
	if limit > 0 && len(keys) > limit {
		rep.Unrepaired = slices.Clone(keys[limit:])
		keys = keys[:limit]
	}
	if len(keys) == 0 {
		return rep, nil
	}
	changes, ferr := st.Refetch(ctx, keys)
	var fe *FetchError
	if errors.As(ferr, &fe) {
		rep.Unrepaired = append(rep.Unrepaired, fe.Keys()...)
	}
	if rep.Result, err = st.Apply(ctx, w, changes); err != nil {
		return rep, fmt.Errorf("jira consistency repair: %w", err)
	}
	for _, k := range keys {
		if !slices.Contains(rep.Unrepaired, k) {
			rep.Repaired = append(rep.Repaired, k)
		}
	}
	return rep, ferr
}

// PollReport is the outcome of an SLA poll.
type PollReport struct {
	Checked   int
	Refreshed []string         // SLA fields changed: only those columns are rewritten
	Updated   []string         // Jira updated the issue since it was stored: full refetch
	Healed    []string         // resolved in Jira while stored as open: full refetch
	Deleted   []string         // Jira says gone
	Failed    map[string]error // could not be asked; the next poll retries
}

// PollSLA asks Jira, for every stored issue not Done, for its SLA fields,
// status and updated only (GET /issue/{key}?fields=...), and returns the
// changes to Apply: an SLA refresh when only SLA values moved (they run
// without webhooks), a full refetch when the issue is done now (a
// resolution whose webhook was lost) or was updated since it was
// stored, a deletion on 404. Done is statusCategory.key == "done".
func (st *Store) PollSLA(ctx context.Context) ([]Change, PollReport, error) {
	stored, err := st.Issues(ctx)
	if err != nil {
		return nil, PollReport{}, fmt.Errorf("jira sla poll: %w", err)
	}
	rep := PollReport{Failed: map[string]error{}}
	fields := []string{"status", "resolution", "resolutiondate", "updated"}
	for _, f := range st.src.cfg.sla {
		fields = append(fields, f.id)
	}
	q := url.Values{"fields": {strings.Join(fields, ",")}}
	var changes []Change
	var refetch []string
	for _, s := range stored {
		if s.StatusCategory == statusCategoryNames["done"] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, rep, err
		}
		rep.Checked++
		at := st.src.now()
		var raw struct {
			Fields map[string]json.RawMessage `json:"fields"`
		}
		if err := st.src.client.get(ctx, "/issue/"+url.PathEscape(s.Key), q, &raw); err != nil {
			if err = notFound(s.Key, err); errors.Is(err, ErrIssueNotFound) {
				changes = append(changes, Change{Key: s.Key, FetchedAt: at, Deleted: true})
				rep.Deleted = append(rep.Deleted, s.Key)
			} else {
				rep.Failed[s.Key] = err
			}
			continue
		}
		var status struct {
			Category struct {
				Key string `json:"key"`
			} `json:"statusCategory"`
		}
		_ = json.Unmarshal(raw.Fields["status"], &status)
		var updatedText string
		_ = json.Unmarshal(raw.Fields["updated"], &updatedText)
		updated, _ := parseTime(updatedText)
		switch {
		case status.Category.Key == "done":
			rep.Healed = append(rep.Healed, s.Key)
			refetch = append(refetch, s.Key)
		case s.Updated.Before(updated.Truncate(time.Second)):
			rep.Updated = append(rep.Updated, s.Key)
			refetch = append(refetch, s.Key)
		default:
			vals := make([]any, len(st.src.cfg.sla))
			for i, f := range st.src.cfg.sla {
				vals[i] = rawText(raw.Fields[f.id])
			}
			if !slices.Equal(vals, s.sla) {
				changes = append(changes, Change{Key: s.Key, FetchedAt: at, sla: &slaRefresh{values: vals, syncedAt: syncedAt(at)}})
				rep.Refreshed = append(rep.Refreshed, s.Key)
			}
		}
	}
	full, ferr := st.Refetch(ctx, refetch)
	var fe *FetchError
	if errors.As(ferr, &fe) {
		for k, e := range fe.Failed {
			rep.Failed[k] = e
		}
	}
	changes = append(changes, full...)
	if len(rep.Failed) > 0 {
		return changes, rep, fmt.Errorf("jira sla poll: %w", &FetchError{Failed: rep.Failed})
	}
	return changes, rep, nil
}
