// Package syncer runs the sync pipeline on the job runner: registry → the table's
// source instance (a connector) → extract (Parquet written to temp names and
// renamed, one rewrite of extract.duckdb per source) → orchestrator rebuild (a new
// query generation) → profiler → sync_state and sync_history. A sync job holds the
// key "sync:<source>" of every source it touches, so one source syncs once at a
// time (across processes too); progress is observable per table.
package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/orchestrator"
	"github.com/agnesdata/agnes/orchestrator/profile"
	"github.com/agnesdata/agnes/server/internal/analytics"
	"github.com/agnesdata/agnes/server/internal/jobs"
	"github.com/agnesdata/agnes/server/internal/store"
)

// Job kinds the syncer runs.
const (
	KindSync       = "sync"
	KindUnregister = "unregister"
	KindRebuild    = "rebuild"
	KindSchedule   = "sync.schedule"
)

// Store is what the syncer reads and writes.
type Store interface {
	store.Registry
	store.SyncStates
	store.Profiles
}

// Source is one configured source instance.
type Source struct {
	Name      string
	Connector connectors.Connector
}

// Syncer owns sync jobs.
type Syncer struct {
	dataDir   string
	store     Store
	analytics *analytics.Analytics
	profiler  *profile.Profiler
	runner    *jobs.Runner
	sources   map[string]connectors.Connector
	log       *slog.Logger
	now       func() time.Time
	attempted attempts
	handovers map[string]Resync // by connector type
}

// Resync refreshes a source's tables by the source's own means and returns
// when that is done.
type Resync func(ctx context.Context, source string) error

// HandOver hands the syncs of every source of a connector type to resync
// instead of an extract. Jira's tables are written by their webhooks, poll and
// consistency check under the source's own lock: an extract beside them would
// race those writes. Call before the runner starts.
func (s *Syncer) HandOver(connectorType string, resync Resync) {
	if s.handovers == nil {
		s.handovers = map[string]Resync{}
	}
	s.handovers[connectorType] = resync
}

// New returns a Syncer for the given source instances and registers its job
// kinds with the runner (before the runner starts).
func New(dataDir string, st Store, an *analytics.Analytics, prof *profile.Profiler, runner *jobs.Runner,
	log *slog.Logger, sources ...Source) *Syncer {
	s := &Syncer{dataDir: dataDir, store: st, analytics: an, profiler: prof, runner: runner, log: log, now: time.Now,
		sources: map[string]connectors.Connector{}}
	for _, src := range sources {
		s.sources[src.Name] = src.Connector
	}
	interrupted := "interrupted: the server stopped during the sync"
	runner.Register(jobs.Kind{Name: KindSync, Run: s.runSync, Concurrency: 4, Interrupted: interrupted})
	runner.Register(jobs.Kind{Name: KindUnregister, Run: s.runUnregister, Interrupted: interrupted})
	runner.Register(jobs.Kind{Name: KindRebuild, Run: s.runRebuild})
	runner.Register(jobs.Kind{Name: KindSchedule, Run: s.runSchedule})
	return s
}

// Source returns the connector of a source instance.
func (s *Syncer) Source(name string) (connectors.Connector, bool) {
	c, ok := s.sources[name]
	return c, ok
}

// SourceNames lists the configured source instances, sorted.
func (s *Syncer) SourceNames() []string {
	out := make([]string, 0, len(s.sources))
	for n := range s.sources {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Recover runs at start: temp files a killed process left in extract folders are
// removed. Nothing half-written was ever visible (files are renamed into place),
// so this is housekeeping; the jobs it was running are the runner's to reclaim.
func (s *Syncer) Recover(context.Context) error {
	root := filepath.Join(s.dataDir, "extracts")
	return filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() && (strings.Contains(d.Name(), ".tmp-") || strings.HasPrefix(d.Name(), "extract.tmp-")) {
			s.log.Info("removing leftover temp file", "path", path)
			return os.Remove(path)
		}
		return nil
	})
}

// TableProgress is one table's progress within a sync job.
type TableProgress struct {
	TableID   string `json:"table_id"`
	Source    string `json:"source"`
	State     string `json:"state"`
	Step      string `json:"step,omitempty"`
	Rows      int64  `json:"rows"`
	SizeBytes int64  `json:"size_bytes"`
	Error     string `json:"error,omitempty"`
}

// Progress is a sync job's progress.
type Progress struct {
	Tables     []TableProgress `json:"tables"`
	Generation int64           `json:"generation,omitempty"`
}

// Job is a sync job with its progress decoded.
type Job struct {
	*store.Job
	Progress
}

// JobOf decodes a stored sync job.
func JobOf(j *store.Job) (*Job, error) {
	out := &Job{Job: j, Progress: Progress{Tables: []TableProgress{}}}
	if len(j.Progress) > 0 {
		if err := json.Unmarshal(j.Progress, &out.Progress); err != nil {
			return nil, fmt.Errorf("job %s progress: %w", j.ID, err)
		}
	}
	return out, nil
}

// syncParams is a sync job's input.
type syncParams struct {
	Tables []string `json:"tables"`
}

func sourceKey(source string) string { return "sync:" + source }

// Trigger starts a job for the listed tables, or every registered table when ids
// is empty. store.ErrNotFound for an unknown id; a *store.BusyError when a
// source involved already has a job running.
func (s *Syncer) Trigger(ctx context.Context, ids []string, by string) (*Job, error) {
	tables, err := s.resolve(ctx, ids)
	if err != nil {
		return nil, err
	}
	var keys []string
	p := Progress{Tables: []TableProgress{}}
	params := syncParams{Tables: []string{}}
	for _, t := range tables {
		if k := sourceKey(t.SourceName()); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
		p.Tables = append(p.Tables, TableProgress{TableID: t.ID, Source: t.SourceName(), State: store.JobPending})
		params.Tables = append(params.Tables, t.ID)
	}
	j, err := s.runner.Submit(ctx, jobs.Spec{Kind: KindSync, Keys: keys, Params: params, Progress: p, CreatedBy: by})
	if err != nil {
		return nil, err
	}
	return JobOf(j)
}

func (s *Syncer) resolve(ctx context.Context, ids []string) ([]*store.RegisteredTable, error) {
	if len(ids) == 0 {
		return s.store.ListTables(ctx)
	}
	var out []*store.RegisteredTable
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		t, err := s.store.GetTable(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("table %q: %w", id, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// Job returns a sync job's current state. store.ErrNotFound for an unknown id
// or a job of another kind.
func (s *Syncer) Job(ctx context.Context, id string) (*Job, error) {
	j, err := s.runner.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.Kind != KindSync {
		return nil, fmt.Errorf("sync job %s: %w", id, store.ErrNotFound)
	}
	return JobOf(j)
}

// Jobs lists the newest sync jobs.
func (s *Syncer) Jobs(ctx context.Context, limit int) ([]*Job, error) {
	list, err := s.runner.List(ctx, store.JobFilter{Kind: KindSync, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]*Job, 0, len(list))
	for _, j := range list {
		sj, err := JobOf(j)
		if err != nil {
			return nil, err
		}
		out = append(out, sj)
	}
	return out, nil
}

// Running lists the ids of the sync jobs running now.
func (s *Syncer) Running(ctx context.Context) ([]string, error) {
	list, err := s.runner.List(ctx, store.JobFilter{Kind: KindSync, States: []string{store.JobRunning}})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, j := range list {
		out = append(out, j.ID)
	}
	sort.Strings(out)
	return out, nil
}

// Watch streams a sync job's states until it ends (see jobs.Runner.Watch).
func (s *Syncer) Watch(ctx context.Context, id string) (<-chan *Job, error) {
	if _, err := s.Job(ctx, id); err != nil {
		return nil, err
	}
	ch, err := s.runner.Watch(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make(chan *Job)
	go func() {
		defer close(out)
		for j := range ch {
			sj, err := JobOf(j)
			if err != nil {
				s.log.Error("watch sync job", "job", id, "err", err)
				return
			}
			select {
			case out <- sj:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Wait blocks until a sync job ends and returns its final state.
func (s *Syncer) Wait(ctx context.Context, id string) (*Job, error) {
	j, err := s.runner.Wait(ctx, id)
	if err != nil {
		return nil, err
	}
	return JobOf(j)
}

// Unregister removes a table (see runUnregister), as a job holding its source's
// key, and waits for it. A *store.BusyError while the source syncs.
func (s *Syncer) Unregister(ctx context.Context, id, by string) error {
	t, err := s.store.GetTable(ctx, id)
	if err != nil {
		return err
	}
	j, err := s.runner.Submit(ctx, jobs.Spec{Kind: KindUnregister, Keys: []string{sourceKey(t.SourceName())},
		Params: syncParams{Tables: []string{id}}, CreatedBy: by})
	if err != nil {
		return err
	}
	j, err = s.runner.Wait(context.WithoutCancel(ctx), j.ID)
	if err != nil {
		return err
	}
	if j.State != store.JobSucceeded {
		return fmt.Errorf("unregister %s: %s", id, j.Error)
	}
	return nil
}

// RebuildResult is a rebuild job's outcome.
type RebuildResult struct {
	Generation int64                  `json:"generation"`
	Sources    int                    `json:"sources"`
	Views      int                    `json:"views"`
	TookMS     int64                  `json:"took_ms"`
	Problems   []orchestrator.Problem `json:"problems"`
}

// Rebuild rebuilds the master analytics database as a job (one at a time) and
// waits for it.
func (s *Syncer) Rebuild(ctx context.Context, by string) (*RebuildResult, error) {
	j, err := s.runner.Submit(ctx, jobs.Spec{Kind: KindRebuild, Keys: []string{KindRebuild}, CreatedBy: by})
	if err != nil {
		return nil, err
	}
	j, err = s.runner.Wait(context.WithoutCancel(ctx), j.ID)
	if err != nil {
		return nil, err
	}
	if j.State != store.JobSucceeded {
		return nil, fmt.Errorf("rebuild: %s", j.Error)
	}
	var res RebuildResult
	if err := json.Unmarshal(j.Progress, &res); err != nil {
		return nil, fmt.Errorf("rebuild result: %w", err)
	}
	return &res, nil
}

func (s *Syncer) runRebuild(ctx context.Context, t *jobs.Task) error {
	res, err := s.analytics.Rebuild(ctx)
	if err != nil {
		return err
	}
	return t.SetProgress(RebuildResult{Generation: int64(res.Generation), Sources: len(res.Sources),
		Views: len(res.Views), TookMS: res.Took.Milliseconds(), Problems: res.Problems})
}
