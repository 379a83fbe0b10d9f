package syncer

import (
	"context"
	"errors"
	"time"

	"github.com/agnesdata/agnes/orchestrator/schedule"
)

// RunScheduler triggers tables whose schedule says they are due, checking every
// interval until ctx ends. A table is due from its last attempt (successful or
// not), so a failing table is retried on schedule, not in a tight loop.
func (s *Syncer) RunScheduler(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	attempted := map[string]time.Time{}
	for {
		s.triggerDue(ctx, attempted)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Syncer) triggerDue(ctx context.Context, attempted map[string]time.Time) {
	tables, err := s.store.ListTables(ctx)
	if err != nil {
		s.log.Error("scheduler: list tables", "err", err)
		return
	}
	states, err := s.store.SyncStates(ctx)
	if err != nil {
		s.log.Error("scheduler: sync state", "err", err)
		return
	}
	last := map[string]time.Time{}
	for _, st := range states {
		if st.LastSync != nil {
			last[st.TableID] = *st.LastSync
		}
	}
	now := s.now().UTC()
	bySource := map[string][]string{}
	for _, t := range tables {
		sch, err := schedule.Parse(t.SyncSchedule)
		if err != nil || sch.IsZero() {
			continue
		}
		from := last[t.ID]
		if a := attempted[t.ID]; a.After(from) {
			from = a
		}
		if sch.Due(from, now) {
			bySource[t.SourceType] = append(bySource[t.SourceType], t.ID)
		}
	}
	for src, ids := range bySource {
		_, err := s.Trigger(ctx, ids, "scheduler")
		var busy *BusyError
		switch {
		case errors.As(err, &busy):
			continue // its tables stay due: the next tick tries again
		case err != nil:
			s.log.Error("scheduler: trigger", "source", src, "err", err)
			continue
		}
		for _, id := range ids {
			attempted[id] = now
		}
	}
}
