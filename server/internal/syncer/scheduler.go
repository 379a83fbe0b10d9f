package syncer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/agnesdata/agnes/orchestrator/schedule"
	"github.com/agnesdata/agnes/server/internal/jobs"
	"github.com/agnesdata/agnes/server/internal/store"
)

// RunScheduler submits a schedule job every interval until ctx ends. The job
// (one at a time, across processes: its key) triggers the tables whose
// schedule says they are due.
func (s *Syncer) RunScheduler(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		_, err := s.runner.Submit(ctx, jobs.Spec{Kind: KindSchedule, Keys: []string{KindSchedule}, CreatedBy: "scheduler"})
		if err != nil && !errors.Is(err, store.ErrBusy) && ctx.Err() == nil {
			s.log.Error("scheduler", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// attempts remembers when this process last triggered each table, so a table
// that keeps failing is retried on its schedule, not on every tick. (Another
// process's scheduler keeps its own: a failing table may be tried once more
// when the schedule job moves between processes.)
type attempts struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (s *Syncer) runSchedule(ctx context.Context, _ *jobs.Task) error {
	tables, err := s.store.ListTables(ctx)
	if err != nil {
		return err
	}
	states, err := s.store.SyncStates(ctx)
	if err != nil {
		return err
	}
	last := map[string]time.Time{}
	for _, st := range states {
		if st.LastSync != nil {
			last[st.TableID] = *st.LastSync
		}
	}
	now := s.now().UTC()
	s.attempted.mu.Lock()
	defer s.attempted.mu.Unlock()
	if s.attempted.at == nil {
		s.attempted.at = map[string]time.Time{}
	}
	bySource := map[string][]string{}
	for _, t := range tables {
		sch, err := schedule.Parse(t.SyncSchedule)
		if err != nil || sch.IsZero() {
			continue
		}
		from := last[t.ID]
		if a := s.attempted.at[t.ID]; a.After(from) {
			from = a
		}
		if sch.Due(from, now) {
			bySource[t.SourceName()] = append(bySource[t.SourceName()], t.ID)
		}
	}
	for src, ids := range bySource {
		_, err := s.Trigger(ctx, ids, "scheduler")
		switch {
		case errors.Is(err, store.ErrBusy):
			continue // its tables stay due: the next tick tries again
		case err != nil:
			s.log.Error("scheduler: trigger", "source", src, "err", err)
			continue
		}
		for _, id := range ids {
			s.attempted.at[id] = now
		}
	}
	return nil
}
