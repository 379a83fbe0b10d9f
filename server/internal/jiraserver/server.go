// Package jiraserver keeps Jira sources fresh in real time: it receives Jira's
// signed webhooks (POST /api/jira/webhook and POST /webhooks/jira), stores each
// delivery in the webhook inbox (store.WebhookEvents) before answering 200, and
// processes the inbox on the job runner, where bursts coalesce: one "jira.apply"
// job per source at a time drains every due event, turns them into issue keys,
// refetches those issues from Jira, applies them to the six tables (one rewrite
// per touched month partition) and publishes the source (analytics.Publish: the
// views read the rewritten files at once; sync_state follows; no rebuild). Safety
// nets run on the same runner: an SLA poll every 5 minutes, a consistency check
// and repair every 6 hours, and a backfill for the first load (JiraService).
//
// Events that cannot be processed now (Jira rate limits or is down) stay in the
// inbox and are tried again with backoff; the tables keep their last good state
// meanwhile. A stopped server leaves them pending; the next start drains them.
// See docs/adr/0014-jira-incremental-publishing.md.
package jiraserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agnesdata/agnes/connectors/extract"
	"github.com/agnesdata/agnes/connectors/jira"
	"github.com/agnesdata/agnes/orchestrator"
	"github.com/agnesdata/agnes/server/internal/analytics"
	"github.com/agnesdata/agnes/server/internal/jobs"
	"github.com/agnesdata/agnes/server/internal/store"
	"github.com/agnesdata/agnes/server/internal/syncer"
)

// Job kinds.
const (
	KindApply    = "jira.apply"    // drain a source's due webhook events
	KindPoll     = "jira.poll"     // SLA poll
	KindCheck    = "jira.check"    // consistency check and repair
	KindBackfill = "jira.backfill" // first load of a project
)

// Store is what the Jira server reads and writes.
type Store interface {
	store.WebhookEvents
}

// Options tune the background work; zero values take the defaults.
type Options struct {
	// PollInterval is how often open issues' SLA fields and status are
	// refreshed (default 5 min).
	PollInterval time.Duration
	// CheckInterval is how often Jira and the tables are compared and the
	// differences repaired (default 6 h); the first check runs CheckDelay
	// after the start (default 10 min), to catch what was missed while the
	// server was down.
	CheckInterval, CheckDelay time.Duration
	// CheckWindow is the span of updates the check compares (default from 30
	// days ago to 5 minutes ago: the last minutes belong to webhooks in flight).
	CheckWindow jira.Window
	// RepairLimit caps the issues one check refetches (default 200); the next
	// check repairs the rest.
	RepairLimit int
	// Retention is how long processed events are kept for dedup and audit
	// (default 7 days; Jira retries a delivery for about 30 minutes).
	Retention time.Duration
	// Profile, if set, refreshes a table's data profile; the check and the
	// backfill call it for the tables they published.
	Profile func(ctx context.Context, table string) error
	Log     *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.PollInterval <= 0 {
		o.PollInterval = 5 * time.Minute
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = 6 * time.Hour
	}
	if o.CheckDelay <= 0 {
		o.CheckDelay = 10 * time.Minute
	}
	if o.CheckWindow == (jira.Window{}) {
		o.CheckWindow = jira.Window{From: 30 * 24 * time.Hour, To: 5 * time.Minute}
	}
	if o.RepairLimit <= 0 {
		o.RepairLimit = 200
	}
	if o.Retention <= 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return o
}

// Server serves every configured Jira source.
type Server struct {
	store  Store
	an     *analytics.Analytics
	runner *jobs.Runner
	opts   Options
	log    *slog.Logger
	sites  map[string]*site
	def    *site // the source the webhook routes serve; nil when none is configured
}

// site is one Jira source instance and the one writer of its extract.
type site struct {
	name string
	src  *jira.Source
	st   *jira.Store
	kick chan struct{} // a new event arrived: make sure an apply job will see it
	wake chan struct{} // a new event arrived: wakes the lingering apply job
	// lingering: the source's apply job is running and waiting for events,
	// so a new one needs no new job.
	lingering atomic.Bool

	mu sync.Mutex // one writer of the extract at a time: apply, poll, check and backfill
	w  *extract.Writer

	publishes, rebuilds atomic.Int64
}

// New builds the server for the Jira sources among sources and registers its
// job kinds with the runner (before the runner starts). The webhook routes
// serve the source named "jira", or the only Jira source.
func New(dataDir string, st Store, an *analytics.Analytics, runner *jobs.Runner, sources []syncer.Source, opts Options) (*Server, error) {
	opts = opts.withDefaults()
	s := &Server{store: st, an: an, runner: runner, opts: opts, log: opts.Log, sites: map[string]*site{}}
	for _, src := range sources {
		js, ok := src.Connector.(*jira.Source)
		if !ok {
			continue
		}
		jst, err := js.OpenStore(orchestrator.ExtractDir(dataDir, src.Name))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("jira source %s: %w", src.Name, err), s.Close())
		}
		s.sites[src.Name] = &site{name: src.Name, src: js, st: jst, kick: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
	}
	switch {
	case s.sites[jira.Type] != nil:
		s.def = s.sites[jira.Type]
	case len(s.sites) == 1:
		for _, x := range s.sites {
			s.def = x
		}
	}
	n := max(1, len(s.sites))
	runner.Register(jobs.Kind{Name: KindApply, Run: s.runApply, Concurrency: n, MaxAttempts: 3,
		Interrupted: "interrupted: the server stopped; the events stay in the inbox"})
	runner.Register(jobs.Kind{Name: KindPoll, Run: s.runPoll, Concurrency: n})
	runner.Register(jobs.Kind{Name: KindCheck, Run: s.runCheck, Concurrency: n})
	runner.Register(jobs.Kind{Name: KindBackfill, Run: s.runBackfill, Concurrency: n, MaxAttempts: 3,
		Interrupted: "interrupted: the server stopped during the backfill"})
	return s, nil
}

// Close releases the sources' stores and writers.
func (s *Server) Close() error {
	var errs []error
	for _, x := range s.sites {
		x.mu.Lock()
		if x.w != nil {
			errs = append(errs, x.w.Close())
			x.w = nil
		}
		x.mu.Unlock()
		errs = append(errs, x.st.Close())
	}
	return errors.Join(errs...)
}

// site returns a source by name; "" is the default one.
func (s *Server) site(name string) (*site, error) {
	if name == "" {
		if s.def == nil {
			return nil, errNotConfigured
		}
		return s.def, nil
	}
	if x := s.sites[name]; x != nil {
		return x, nil
	}
	return nil, fmt.Errorf("%w: %q", errUnknownSource, name)
}

var (
	errNotConfigured = errors.New("no Jira source is configured")
	errUnknownSource = errors.New("no Jira source is named")
)

// Run does the sources' background work until ctx ends: it makes sure an apply
// job drains every event that arrives (and those left from before a restart or
// put off after a failure), and submits the SLA poll and the consistency check
// on their schedules.
func (s *Server) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, x := range s.sites {
		wg.Go(func() { s.runSite(ctx, x) })
	}
	wg.Wait()
}

// How often a wanted apply job is submitted again while another holds the key,
// and how often the inbox is looked at for events that came due (retries).
const (
	kickInterval = 200 * time.Millisecond
	dueInterval  = time.Second
)

func (s *Server) runSite(ctx context.Context, x *site) {
	kick := time.NewTicker(kickInterval)
	defer kick.Stop()
	due := time.NewTicker(dueInterval)
	defer due.Stop()
	poll := time.NewTicker(s.opts.PollInterval)
	defer poll.Stop()
	check := time.NewTimer(s.opts.CheckDelay)
	defer check.Stop()
	wanted := s.due(ctx, x) // events left from before the start
	for {
		if wanted {
			wanted = !s.submitApply(ctx, x)
		}
		select {
		case <-ctx.Done():
			return
		case <-x.kick:
			wanted = true
		case <-kick.C:
		case <-due.C:
			wanted = wanted || s.due(ctx, x)
		case <-poll.C:
			s.submitPeriodic(ctx, x, KindPoll)
		case <-check.C:
			s.submitPeriodic(ctx, x, KindCheck)
			check.Reset(s.opts.CheckInterval)
		}
	}
}

// due reports whether the source has events to take now.
func (s *Server) due(ctx context.Context, x *site) bool {
	evs, err := s.store.DueWebhookEvents(ctx, x.name, time.Now(), 1)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("jira: read the webhook inbox", "source", x.name, "err", err)
	}
	return len(evs) > 0
}

// notify says a new event is in the inbox; it never blocks the webhook.
func (x *site) notify() {
	signal(x.wake)
	signal(x.kick)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// sourceParams names the source a job works on.
type sourceParams struct {
	Source string `json:"source"`
}

func key(kind, source string) string { return kind + ":" + source }

// submitApply makes sure an apply job will look at the inbox after now. It
// reports false when that is not settled yet (the job holding the key is
// running, busy with earlier events or about to end): the caller tries again
// shortly.
func (s *Server) submitApply(ctx context.Context, x *site) bool {
	_, err := s.runner.Submit(ctx, jobs.Spec{Kind: KindApply, Keys: []string{key(KindApply, x.name)},
		Params: sourceParams{Source: x.name}, CreatedBy: "jira webhook"})
	var busy *store.BusyError
	switch {
	case err == nil:
		return true
	case errors.As(err, &busy):
		j, err := s.runner.Get(ctx, busy.JobID)
		switch {
		case err != nil:
			return false
		case j.State == store.JobPending: // it has not looked yet
			return true
		case j.State == store.JobRunning && x.lingering.Load(): // it waits for exactly this
			signal(x.wake)
			return true
		}
		return false
	case ctx.Err() != nil:
		return true
	}
	s.log.Error("jira: submit the apply job", "source", x.name, "err", err)
	return false
}

// submitPeriodic submits a poll or check unless one is still pending or running.
func (s *Server) submitPeriodic(ctx context.Context, x *site, kind string) {
	_, err := s.runner.Submit(ctx, jobs.Spec{Kind: kind, Keys: []string{key(kind, x.name)},
		Params: sourceParams{Source: x.name}, CreatedBy: "jira schedule"})
	if err != nil && !errors.Is(err, store.ErrBusy) && ctx.Err() == nil {
		s.log.Error("jira: submit a periodic job", "source", x.name, "kind", kind, "err", err)
	}
}

// Poll submits an SLA poll of a source ("" the default) now, as the schedule
// does, and returns its job id.
func (s *Server) Poll(ctx context.Context, source string) (string, error) {
	return s.submitNow(ctx, source, KindPoll)
}

// Check submits a consistency check of a source ("" the default) now and
// returns its job id.
func (s *Server) Check(ctx context.Context, source string) (string, error) {
	return s.submitNow(ctx, source, KindCheck)
}

// Resync runs a consistency check of a source now and waits for it (a check
// already under way is waited for instead): what a sync of a registered Jira
// table does (syncer.HandOver), since the tables are written here only.
func (s *Server) Resync(ctx context.Context, source string) error {
	id, err := s.Check(ctx, source)
	if busy := (*store.BusyError)(nil); errors.As(err, &busy) {
		id, err = busy.JobID, nil
	}
	if err != nil {
		return err
	}
	j, err := s.runner.Wait(ctx, id)
	switch {
	case err != nil:
		return err
	case j.State == store.JobFailed || j.State == store.JobCancelled:
		return fmt.Errorf("jira consistency check %s %s: %s", id, j.State, j.Error)
	}
	return nil
}

func (s *Server) submitNow(ctx context.Context, source, kind string) (string, error) {
	x, err := s.site(source)
	if err != nil {
		return "", err
	}
	j, err := s.runner.Submit(ctx, jobs.Spec{Kind: kind, Keys: []string{key(kind, x.name)},
		Params: sourceParams{Source: x.name}, CreatedBy: "jira"})
	if err != nil {
		return "", err
	}
	return j.ID, nil
}

// siteOf is the source a job works on.
func (s *Server) siteOf(t *jobs.Task) (*site, error) {
	var p sourceParams
	if err := t.Params(&p); err != nil {
		return nil, err
	}
	x := s.sites[p.Source]
	if x == nil {
		return nil, fmt.Errorf("no Jira source named %q is configured any more", p.Source)
	}
	return x, nil
}

// write applies changes to a source's tables and publishes them: the one path
// by which anything reaches the extract. It runs to its end once started (the
// files and extract.duckdb stay consistent when the server stops meanwhile).
func (s *Server) write(ctx context.Context, x *site, changes []jira.Change) (jira.Result, analytics.Publication, error) {
	ctx = context.WithoutCancel(ctx)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.w == nil {
		w, err := extract.NewWriter(x.st.Dir())
		if err != nil {
			return jira.Result{}, analytics.Publication{}, err
		}
		x.w = w
	}
	t0 := time.Now()
	res, err := x.st.Apply(ctx, x.w, changes)
	if err != nil || len(res.Tables) == 0 {
		return res, analytics.Publication{}, err
	}
	t1 := time.Now()
	if err := x.w.Update(ctx, res.Tables...); err != nil {
		return res, analytics.Publication{}, fmt.Errorf("jira %s: record the extract: %w", x.name, err)
	}
	t2 := time.Now()
	pub, err := s.an.Publish(ctx, x.name)
	if err != nil {
		return res, pub, err
	}
	x.publishes.Add(1)
	if pub.Rebuilt {
		x.rebuilds.Add(1)
	}
	s.log.Info("jira: published", "source", x.name, "upserted", len(res.Upserted), "deleted", len(res.Deleted),
		"tables", len(res.Tables), "rebuilt", pub.Rebuilt, "apply_ms", t1.Sub(t0).Milliseconds(),
		"update_ms", t2.Sub(t1).Milliseconds(), "publish_ms", time.Since(t2).Milliseconds())
	return res, pub, nil
}

// profile refreshes the profiles of the tables a job published.
func (s *Server) profile(ctx context.Context, tables []extract.Table) {
	if s.opts.Profile == nil {
		return
	}
	for _, t := range tables {
		if err := s.opts.Profile(ctx, t.TableName); err != nil {
			s.log.Warn("jira: profile", "table", t.TableName, "err", err)
		}
	}
}
