// Package syncer runs the sync pipeline: registry → connector → extract (Parquet
// written to temp names and renamed, one rewrite of extract.duckdb per source) →
// orchestrator rebuild (a new query generation) → profiler → sync_state and
// sync_history. One job at a time per source; progress is observable per table.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/orchestrator/profile"
	"github.com/agnesdata/agnes/server/internal/analytics"
	"github.com/agnesdata/agnes/server/internal/store"
)

// BusyError says a source already has a job running.
type BusyError struct{ Source, JobID string }

func (e *BusyError) Error() string {
	return fmt.Sprintf("a sync of source %q is already running (job %s)", e.Source, e.JobID)
}

// Syncer owns sync jobs.
type Syncer struct {
	dataDir   string
	store     *store.Store
	analytics *analytics.Analytics
	profiler  *profile.Profiler
	sources   map[string]connectors.Connector
	log       *slog.Logger
	now       func() time.Time

	ctx    context.Context // server lifetime: jobs outlive the request that started them
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	busy map[string]string // source → running job id
	live map[string]*run   // job id → running job
}

// New returns a Syncer for the given connectors (by their Type()).
func New(dataDir string, st *store.Store, an *analytics.Analytics, prof *profile.Profiler, log *slog.Logger, conns ...connectors.Connector) *Syncer {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Syncer{dataDir: dataDir, store: st, analytics: an, profiler: prof, log: log, now: time.Now,
		sources: map[string]connectors.Connector{}, ctx: ctx, cancel: cancel,
		busy: map[string]string{}, live: map[string]*run{}}
	for _, c := range conns {
		s.sources[c.Type()] = c
	}
	return s
}

// Connector returns the connector of a source type.
func (s *Syncer) Connector(sourceType string) (connectors.Connector, bool) {
	c, ok := s.sources[sourceType]
	return c, ok
}

// SourceTypes lists the configured source types, sorted.
func (s *Syncer) SourceTypes() []string {
	out := make([]string, 0, len(s.sources))
	for t := range s.sources {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Close cancels running jobs and waits for them to stop.
func (s *Syncer) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// Recover runs at start: jobs a killed process left running are marked cancelled,
// and temp files it left in extract folders are removed. Nothing half-written was
// ever visible (files are renamed into place), so this is housekeeping.
func (s *Syncer) Recover(ctx context.Context) error {
	n, err := s.store.CancelUnfinishedJobs(ctx, "interrupted: the server stopped during the sync")
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Warn("sync jobs interrupted by a previous stop", "jobs", n)
	}
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

// Running lists the running jobs' ids.
func (s *Syncer) Running() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.live))
	for id := range s.live {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Trigger starts a job for the listed tables, or every registered table when ids
// is empty. store.ErrNotFound for an unknown id; *BusyError when a source involved
// already has a job running.
func (s *Syncer) Trigger(ctx context.Context, ids []string, by string) (*store.SyncJob, error) {
	tables, err := s.resolve(ctx, ids)
	if err != nil {
		return nil, err
	}
	jobID := uuid.NewString()
	var sources []string
	for _, t := range tables {
		if !slices.Contains(sources, t.SourceType) {
			sources = append(sources, t.SourceType)
		}
	}
	if err := s.claim(jobID, sources); err != nil {
		return nil, err
	}
	job := store.SyncJob{ID: jobID, State: store.JobPending, TriggeredBy: by, CreatedAt: s.now().UTC(), Tables: []store.JobTable{}}
	for _, t := range tables {
		job.Tables = append(job.Tables, store.JobTable{TableID: t.ID, Source: t.SourceType, State: store.JobPending})
	}
	r := newRun(job)
	if err := s.store.SaveJob(ctx, &job); err != nil {
		s.release(jobID, sources)
		return nil, err
	}
	s.mu.Lock()
	s.live[jobID] = r
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.release(jobID, sources)
		s.execute(r, tables)
	}()
	snap := r.snapshot()
	return &snap, nil
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

// claim marks sources busy for a job, all or none.
func (s *Syncer) claim(jobID string, sources []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, src := range sources {
		if other, ok := s.busy[src]; ok {
			return &BusyError{Source: src, JobID: other}
		}
	}
	for _, src := range sources {
		s.busy[src] = jobID
	}
	return nil
}

func (s *Syncer) release(jobID string, sources []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, src := range sources {
		if s.busy[src] == jobID {
			delete(s.busy, src)
		}
	}
	delete(s.live, jobID)
}

// Job returns a job's current state, live or from the store.
func (s *Syncer) Job(ctx context.Context, id string) (*store.SyncJob, error) {
	s.mu.Lock()
	r := s.live[id]
	s.mu.Unlock()
	if r != nil {
		snap := r.snapshot()
		return &snap, nil
	}
	return s.store.GetJob(ctx, id)
}

// Watch streams a job's states: the current one at once, then every change, and
// closes the channel when the job has ended (or ctx is done).
func (s *Syncer) Watch(ctx context.Context, id string) (<-chan store.SyncJob, error) {
	s.mu.Lock()
	r := s.live[id]
	s.mu.Unlock()
	if r == nil {
		j, err := s.store.GetJob(ctx, id)
		if err != nil {
			return nil, err
		}
		ch := make(chan store.SyncJob, 1)
		ch <- *j
		close(ch)
		return ch, nil
	}
	return r.subscribe(ctx), nil
}

// Wait blocks until a job ends and returns its final state.
func (s *Syncer) Wait(ctx context.Context, id string) (*store.SyncJob, error) {
	ch, err := s.Watch(ctx, id)
	if err != nil {
		return nil, err
	}
	var last store.SyncJob
	for j := range ch {
		last = j
	}
	if !last.Finished() {
		return nil, ctx.Err()
	}
	return &last, nil
}
