// Package jira is the Jira Cloud source: six tables (issues, comments,
// attachments, changelog, issuelinks, remote_links) kept in monthly
// Parquet partitions and updated one issue at a time from signed
// webhooks, with a backfill (Extract, Backfill), a consistency repair and
// an SLA poll as safety nets. Every change is decided by refetching the
// issue from Jira (a 404 tombstones it); webhook bodies only say which
// issues to refetch. docs/reference/jira.md is the protocol it follows.
//
// The server wires it: the webhook route verifies (VerifySignature),
// parses (ParseEvent) and persists events; a job turns a batch of events
// into keys (Store.KeysFor), refetches them (Store.Refetch), applies the
// changes (Store.Apply) and publishes the returned tables with one
// extract.Writer.Update.
package jira

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/extract"
)

// Type is the connector type of Jira sources.
const Type = "jira"

// Source is one Jira site configured as a source instance.
type Source struct {
	name   string
	cfg    config
	client *client
	now    func() time.Time
}

// New builds a source from checked settings; it does not call Jira.
func New(name string, s Settings, opts ...Option) (*Source, error) {
	if !extract.ValidName(name) {
		return nil, fmt.Errorf("jira source: %q is not a valid source name", name)
	}
	cfg, err := s.resolve()
	if err != nil {
		return nil, err
	}
	o := options{sleep: sleepCtx, now: time.Now, http: &http.Client{Timeout: 2 * time.Minute}}
	for _, opt := range opts {
		opt(&o)
	}
	return &Source{name: name, cfg: cfg, client: newClient(cfg, o), now: o.now}, nil
}

// Open is the connectors.Factory of Jira sources: settings come from the
// configuration (see Settings for the keys).
func Open(name string, raw map[string]any) (connectors.Connector, error) {
	var s Settings
	if err := connectors.DecodeSettings(raw, &s); err != nil {
		return nil, fmt.Errorf("jira source %s: %w", name, err)
	}
	return New(name, s)
}

var _ connectors.Factory = Open

// Type implements connectors.Connector.
func (s *Source) Type() string { return Type }

// Name is the source instance's name (its extract folder).
func (s *Source) Name() string { return s.name }

// WebhookSecret is the secret deliveries are signed with (zero when unset:
// the receiver then answers 503).
func (s *Source) WebhookSecret() connectors.Secret { return s.cfg.WebhookSecret }

// Discover offers the six tables. It does not call Jira.
func (s *Source) Discover(ctx context.Context) ([]connectors.Discovered, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	columns := s.cfg.columns()
	out := make([]connectors.Discovered, 0, numTables)
	for _, t := range []int{tIssues, tComments, tAttachments, tChangelog, tIssueLinks, tRemoteLinks} {
		names := make([]string, len(columns[t]))
		for i, c := range columns[t] {
			names[i] = c.Name
		}
		out = append(out, connectors.Discovered{
			ID: Tables[t], Name: Tables[t], Bucket: s.name, SourceTable: Tables[t],
			Description: tableDescriptions[t], Columns: names, PrimaryKey: primaryKeys[t],
		})
	}
	return out, nil
}

var primaryKeys = [numTables][]string{
	tIssues:      {"issue_key"},
	tComments:    {"comment_id"},
	tAttachments: {"attachment_id"},
	tChangelog:   {"change_id", "field_name"},
	tIssueLinks:  {"issue_key", "link_id"},
	tRemoteLinks: {"issue_key", "remote_link_id"},
}

// tableIndex finds a table by name.
func tableIndex(name string) (int, bool) {
	i := slices.Index(Tables[:], name)
	return i, i >= 0
}

// Extract rewrites one table from Jira: every issue of the configured
// project (created since Since), fetched with what that table needs, in
// monthly parts; months without issues any more are pruned. The table
// must be registered under its own name, because the webhook path
// (Store.Apply) writes the same folders.
func (s *Source) Extract(ctx context.Context, spec connectors.TableSpec, w *extract.Writer) (extract.Table, error) {
	if err := ctx.Err(); err != nil {
		return extract.Table{}, fmt.Errorf("jira extract %s: %w", spec.ID, err)
	}
	src := spec.SourceTable
	if src == "" {
		src = spec.ID
	}
	t, ok := tableIndex(src)
	if !ok {
		return extract.Table{}, fmt.Errorf("jira extract %s: source table %q: %w", spec.ID, src, connectors.ErrNotFound)
	}
	if spec.ID != src {
		return extract.Table{}, &connectors.InputError{Msg: fmt.Sprintf(
			"jira table %s must be registered under its own name (id %q), not %q: webhooks update it in place", src, src, spec.ID)}
	}
	if g := spec.PartitionGranularity; g != "" && g != "month" {
		return extract.Table{}, &connectors.InputError{Msg: fmt.Sprintf("jira tables are partitioned by month, not %q", g)}
	}
	jql, err := s.backfillJQL(s.cfg.Project, s.cfg.Since)
	if err != nil {
		return extract.Table{}, err
	}
	hits, err := s.Search(ctx, jql)
	if err != nil {
		return extract.Table{}, fmt.Errorf("jira extract %s: %w", spec.ID, err)
	}
	n := need{comments: t == tComments, changelog: t == tChangelog, remoteLinks: t == tRemoteLinks}
	keys := make([]string, len(hits))
	for i, h := range hits {
		keys[i] = h.Key
	}
	fetched, _, failed := s.fetchAll(ctx, keys, n)
	if len(failed) > 0 {
		return extract.Table{}, fmt.Errorf("jira extract %s: %w", spec.ID, &FetchError{Failed: failed})
	}
	byMonth := map[string][]row{}
	for _, d := range fetched {
		if d == nil { // deleted between the search and the fetch
			continue
		}
		r, err := s.cfg.transform(d, "")
		if err != nil {
			return extract.Table{}, fmt.Errorf("jira extract %s: %w", spec.ID, err)
		}
		byMonth[r.month] = append(byMonth[r.month], r.rows[t]...)
	}
	if len(byMonth) == 0 { // an empty table still has a part, so its view has columns
		byMonth[s.now().UTC().Format("2006-01")] = nil
	}
	columns := s.cfg.columns()[t]
	for _, m := range sortedKeys(byMonth) {
		rows := byMonth[m]
		if _, err := w.WriteRows(ctx, spec.ID+"/"+m, columns, emitRows(rows)); err != nil {
			return extract.Table{}, fmt.Errorf("jira extract %s: %w", spec.ID, err)
		}
	}
	if err := w.PruneParts(spec.ID); err != nil {
		return extract.Table{}, fmt.Errorf("jira extract %s: %w", spec.ID, err)
	}
	desc := spec.Description
	if desc == "" {
		desc = tableDescriptions[t]
	}
	tbl, err := w.PartitionedTable(ctx, spec.ID, desc)
	if err != nil {
		return extract.Table{}, fmt.Errorf("jira extract %s: %w", spec.ID, err)
	}
	return tbl, nil
}

func emitRows(rows []row) func(emit func(values ...any) error) error {
	return func(emit func(values ...any) error) error {
		for _, r := range rows {
			if err := emit(r...); err != nil {
				return err
			}
		}
		return nil
	}
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// backfillJQL selects a project's issues created since a date, oldest first.
func (s *Source) backfillJQL(project, since string) (string, error) {
	if project == "" {
		return "", &connectors.InputError{Msg: "jira: set project (JIRA_PROJECT) to say which issues to load"}
	}
	if !projectRE.MatchString(project) {
		return "", &connectors.InputError{Msg: fmt.Sprintf("jira: project %q is not a project key like SUP", project)}
	}
	jql := "project = " + quoteJQL(project)
	if since != "" {
		if _, err := time.Parse("2006-01-02", since); err != nil {
			return "", &connectors.InputError{Msg: fmt.Sprintf("jira: since %q is not a date YYYY-MM-DD", since)}
		}
		jql += " AND created >= " + quoteJQL(since)
	}
	return jql + " ORDER BY created ASC", nil
}
