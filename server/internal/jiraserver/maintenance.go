package jiraserver

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/connectors/jira"
	"github.com/agnesdata/agnes/server/internal/jobs"
)

// PollProgress is an SLA poll's outcome.
type PollProgress struct {
	Checked   int      `json:"checked"`
	Refreshed []string `json:"refreshed"` // SLA columns rewritten
	Healed    []string `json:"healed"`    // resolved in Jira while stored open: refetched
	Updated   []string `json:"updated"`   // updated in Jira since stored: refetched
	Deleted   []string `json:"deleted"`
	Failed    []string `json:"failed"` // could not be asked; the next poll tries again
}

// runPoll refreshes open issues' SLA fields and status: SLA clocks run without
// webhooks, and a resolution whose webhook was lost is healed here.
func (s *Server) runPoll(ctx context.Context, t *jobs.Task) error {
	x, err := s.siteOf(t)
	if err != nil {
		return err
	}
	changes, rep, perr := x.st.PollSLA(ctx)
	p := PollProgress{Checked: rep.Checked, Refreshed: rep.Refreshed, Healed: rep.Healed, Updated: rep.Updated,
		Deleted: rep.Deleted, Failed: sortedKeys(rep.Failed)}
	if len(changes) > 0 {
		if _, _, err := s.write(ctx, x, changes); err != nil {
			return err
		}
	}
	if err := t.SetProgress(p); err != nil {
		s.log.Warn("jira: save poll progress", "job", t.ID(), "err", err)
	}
	if len(p.Failed) > 0 {
		return jobs.Partial(fmt.Errorf("jira sla poll: %d of %d issue(s) could not be asked (%w); the next poll tries again",
			len(p.Failed), rep.Checked, rep.Failed[p.Failed[0]]))
	}
	return perr
}

// CheckProgress is a consistency check's outcome.
type CheckProgress struct {
	Missing    []string `json:"missing"`  // in Jira, not stored: lost creations
	Outdated   []string `json:"outdated"` // updated in Jira after the stored copy: lost updates
	Gone       []string `json:"gone"`     // stored, no longer in Jira: lost deletions
	Repaired   []string `json:"repaired"`
	Unrepaired []string `json:"unrepaired"` // over the limit or failed; the next check takes them
	Pruned     int      `json:"pruned"`     // processed webhook events past retention
}

// runCheck compares Jira with the stored issues over the window (JQL search)
// and refetches what differs, at most RepairLimit issues per run; it also
// prunes the inbox of events processed before the retention.
func (s *Server) runCheck(ctx context.Context, t *jobs.Task) error {
	x, err := s.siteOf(t)
	if err != nil {
		return err
	}
	var p CheckProgress
	if p.Pruned, err = s.store.PruneWebhookEvents(ctx, x.name, time.Now().Add(-s.opts.Retention)); err != nil {
		return err
	}
	d, err := x.st.Check(ctx, s.opts.CheckWindow)
	if err != nil {
		return err
	}
	p.Missing, p.Outdated, p.Gone = d.Missing, d.Outdated, d.Gone
	keys := d.Keys()
	if len(keys) > s.opts.RepairLimit {
		p.Unrepaired = slices.Clone(keys[s.opts.RepairLimit:])
		keys = keys[:s.opts.RepairLimit]
	}
	var ferr error
	if len(keys) > 0 {
		var changes []jira.Change
		changes, ferr = x.st.Refetch(ctx, keys)
		var fe *jira.FetchError
		if errors.As(ferr, &fe) {
			p.Unrepaired = append(p.Unrepaired, fe.Keys()...)
		}
		res, _, err := s.write(ctx, x, changes)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if !slices.Contains(p.Unrepaired, k) {
				p.Repaired = append(p.Repaired, k)
			}
		}
		s.profile(ctx, res.Tables)
	}
	if err := t.SetProgress(p); err != nil {
		s.log.Warn("jira: save check progress", "job", t.ID(), "err", err)
	}
	if len(p.Unrepaired) > 0 {
		return jobs.Partial(fmt.Errorf("jira consistency check: %d issue(s) left for the next check", len(p.Unrepaired)))
	}
	return nil
}

// BackfillParams is a backfill's input.
type BackfillParams struct {
	Source  string `json:"source"`
	Project string `json:"project"`
	Since   string `json:"since,omitempty"`
}

// BackfillProgress is a backfill's progress.
type BackfillProgress struct {
	Total    int      `json:"total"`
	Done     int      `json:"done"`
	Upserted int      `json:"upserted"`
	Deleted  int      `json:"deleted"`
	Failed   []string `json:"failed"`
}

// backfillBatch is how many issues a backfill fetches, applies and publishes
// at a time; webhooks' rounds take turns with its batches.
const backfillBatch = 100

var (
	projectRE = regexp.MustCompile(`^[A-Z][A-Z0-9]{0,31}$`)
	dateRE    = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// backfillJQL is the project's issues created since a date, oldest first
// (Jira refuses a search without a restriction).
func backfillJQL(project, since string) (string, error) {
	if !projectRE.MatchString(project) {
		return "", fmt.Errorf("project %q is not a project key like SUP", project)
	}
	jql := `project = "` + project + `"`
	if since != "" {
		if _, err := time.Parse(time.DateOnly, since); err != nil || !dateRE.MatchString(since) {
			return "", fmt.Errorf("since %q is not a date YYYY-MM-DD", since)
		}
		jql += ` AND created >= "` + since + `"`
	}
	return jql + " ORDER BY created ASC", nil
}

// runBackfill loads a project: the keys from a JQL search, then batches of
// refetch and apply, each published, so the tables fill while it runs and the
// result equals what webhooks would have written. Issues that could not be
// fetched are listed; the consistency check takes them later.
func (s *Server) runBackfill(ctx context.Context, t *jobs.Task) error {
	var params BackfillParams
	if err := t.Params(&params); err != nil {
		return err
	}
	x := s.sites[params.Source]
	if x == nil {
		return fmt.Errorf("no Jira source named %q is configured any more", params.Source)
	}
	jql, err := backfillJQL(params.Project, params.Since)
	if err != nil {
		return err
	}
	hits, err := x.src.Search(ctx, jql)
	if err != nil {
		return err
	}
	p := BackfillProgress{Total: len(hits), Failed: []string{}}
	save := func() {
		if err := t.SetProgress(p); err != nil {
			s.log.Warn("jira: save backfill progress", "job", t.ID(), "err", err)
		}
	}
	save()
	var published []extract.Table
	for start := 0; start < len(hits); start += backfillBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := make([]string, 0, backfillBatch)
		for _, h := range hits[start:min(len(hits), start+backfillBatch)] {
			batch = append(batch, h.Key)
		}
		changes, ferr := x.st.Refetch(ctx, batch)
		var fe *jira.FetchError
		if errors.As(ferr, &fe) {
			p.Failed = append(p.Failed, fe.Keys()...)
		}
		res, _, err := s.write(ctx, x, changes)
		if err != nil {
			return err
		}
		published = mergeTables(published, res.Tables)
		p.Done += len(batch)
		p.Upserted += len(res.Upserted)
		p.Deleted += len(res.Deleted)
		save()
	}
	s.profile(ctx, published)
	if len(p.Failed) > 0 {
		return jobs.Partial(fmt.Errorf("jira backfill: %d issue(s) could not be fetched: %s", len(p.Failed), clip(p.Failed, 10)))
	}
	return nil
}

func mergeTables(into, more []extract.Table) []extract.Table {
	for _, t := range more {
		if !slices.ContainsFunc(into, func(x extract.Table) bool { return x.TableName == t.TableName }) {
			into = append(into, t)
		}
	}
	return into
}

// clip lists at most n items.
func clip(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(" and %d more", len(items)-n)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
