package jobs_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/server/internal/jobs"
	"github.com/agnesdata/agnes/server/internal/store"
	"github.com/agnesdata/agnes/server/internal/store/duckdbstore"
)

func openStore(t *testing.T) store.Store {
	s, err := duckdbstore.Open(t.Context(), filepath.Join(t.TempDir(), "system.duckdb"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func start(t *testing.T, st store.Jobs, node string, kinds ...jobs.Kind) *jobs.Runner {
	r := jobs.New(st, jobs.Options{Node: node, Lease: 3 * time.Second, Poll: 20 * time.Millisecond})
	for _, k := range kinds {
		r.Register(k)
	}
	require.NoError(t, r.Start(t.Context()))
	t.Cleanup(r.Stop)
	return r
}

func wait(t *testing.T, r *jobs.Runner, id string) *store.Job {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	j, err := r.Wait(ctx, id)
	require.NoError(t, err)
	return j
}

type progress struct{ Step string }

func TestOutcomesAndProgress(t *testing.T) {
	st := openStore(t)
	r := start(t, st, "n1", jobs.Kind{Name: "work", Run: func(ctx context.Context, task *jobs.Task) error {
		var p struct{ Outcome string }
		require.NoError(t, task.Params(&p))
		require.NoError(t, task.SetProgress(progress{Step: "half"}))
		switch p.Outcome {
		case "fail":
			return errors.New("boom")
		case "partial":
			return jobs.Partial(errors.New("one table failed"))
		case "panic":
			panic("oops")
		}
		return task.SetProgress(progress{Step: "done"})
	}})
	for outcome, want := range map[string]string{"ok": store.JobSucceeded, "fail": store.JobFailed,
		"partial": store.JobPartial, "panic": store.JobFailed} {
		j, err := r.Submit(t.Context(), jobs.Spec{Kind: "work", Params: map[string]string{"Outcome": outcome}, CreatedBy: "t"})
		require.NoError(t, err)
		require.Equal(t, store.JobPending, j.State)
		got := wait(t, r, j.ID)
		require.Equal(t, want, got.State, outcome)
		stored, err := st.GetJob(t.Context(), j.ID)
		require.NoError(t, err)
		require.Equal(t, want, stored.State, "the store agrees")
		require.NotNil(t, stored.FinishedAt)
		if outcome == "ok" {
			require.JSONEq(t, `{"Step":"done"}`, string(stored.Progress))
		}
	}
	_, err := r.Submit(t.Context(), jobs.Spec{Kind: "nope"})
	require.Error(t, err)
}

func TestKeysMakeSingletons(t *testing.T) {
	st := openStore(t)
	release := make(chan struct{})
	r := start(t, st, "n1", jobs.Kind{Name: "sync", Concurrency: 2, Run: func(ctx context.Context, _ *jobs.Task) error {
		<-release
		return nil
	}})
	a, err := r.Submit(t.Context(), jobs.Spec{Kind: "sync", Keys: []string{"sync:kbc"}})
	require.NoError(t, err)
	_, err = r.Submit(t.Context(), jobs.Spec{Kind: "sync", Keys: []string{"sync:kbc"}})
	var busy *store.BusyError
	require.ErrorAs(t, err, &busy)
	require.Equal(t, a.ID, busy.JobID)
	b, err := r.Submit(t.Context(), jobs.Spec{Kind: "sync", Keys: []string{"sync:other"}})
	require.NoError(t, err, "other sources sync meanwhile")
	close(release)
	require.Equal(t, store.JobSucceeded, wait(t, r, a.ID).State)
	require.Equal(t, store.JobSucceeded, wait(t, r, b.ID).State)
	_, err = r.Submit(t.Context(), jobs.Spec{Kind: "sync", Keys: []string{"sync:kbc"}})
	require.NoError(t, err, "free again once finished")
}

func TestCancelStopsARunningJob(t *testing.T) {
	st := openStore(t)
	started := make(chan struct{})
	r := start(t, st, "n1", jobs.Kind{Name: "long", Run: func(ctx context.Context, _ *jobs.Task) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}})
	j, err := r.Submit(t.Context(), jobs.Spec{Kind: "long"})
	require.NoError(t, err)
	<-started
	ch, err := r.Watch(t.Context(), j.ID)
	require.NoError(t, err)
	require.Equal(t, store.JobRunning, (<-ch).State)
	_, err = r.Cancel(t.Context(), j.ID, "cancelled by admin@example.com")
	require.NoError(t, err)
	var last *store.Job
	for s := range ch {
		last = s
	}
	require.Equal(t, store.JobCancelled, last.State)
	require.Equal(t, "cancelled by admin@example.com", last.Error)
}

// Two runners (two processes) on one store never run a job twice.
func TestTwoRunnersNeverRunAJobTwice(t *testing.T) {
	st := openStore(t)
	var mu sync.Mutex
	ran := map[string]int{}
	kind := jobs.Kind{Name: "event", Concurrency: 4, Run: func(ctx context.Context, task *jobs.Task) error {
		mu.Lock()
		ran[task.ID()]++
		mu.Unlock()
		time.Sleep(time.Millisecond)
		return nil
	}}
	a := start(t, st, "node-a", kind)
	b := start(t, st, "node-b", kind)
	var ids []string
	for i := range 60 {
		r := a
		if i%2 == 1 {
			r = b
		}
		j, err := r.Submit(t.Context(), jobs.Spec{Kind: "event"})
		require.NoError(t, err)
		ids = append(ids, j.ID)
	}
	for _, id := range ids {
		require.Equal(t, store.JobSucceeded, wait(t, a, id).State)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, ran, 60)
	for id, n := range ran {
		require.Equal(t, 1, n, id)
	}
}

// A job whose process died is reclaimed by the next start on that node: given
// up as interrupted when its kind runs once, run again when it may retry.
func TestDeadProcessesJobsAreReclaimed(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	for _, id := range []string{"once", "again"} {
		kind := map[string]string{"once": "sync", "again": "event"}[id]
		require.NoError(t, st.CreateJob(ctx, &store.Job{ID: id, Kind: kind, Keys: []string{"k:" + id}, CreatedAt: time.Now().UTC()}))
		_, err := st.ClaimJob(ctx, store.Claim{Owner: "node-a/dead", Lease: time.Hour, Kinds: []string{kind}})
		require.NoError(t, err)
	}
	var reran atomic.Int32
	r := start(t, st, "node-a",
		jobs.Kind{Name: "sync", Interrupted: "interrupted: the server stopped during the sync",
			Run: func(context.Context, *jobs.Task) error { t.Error("a sync must not run again"); return nil }},
		jobs.Kind{Name: "event", MaxAttempts: 3, Run: func(context.Context, *jobs.Task) error { reran.Add(1); return nil }})
	once := wait(t, r, "once")
	require.Equal(t, store.JobCancelled, once.State)
	require.Equal(t, "interrupted: the server stopped during the sync", once.Error)
	require.Equal(t, store.JobSucceeded, wait(t, r, "again").State)
	require.Equal(t, int32(1), reran.Load())
}

func TestRetryThenGiveUp(t *testing.T) {
	st := openStore(t)
	var attempts atomic.Int32
	r := start(t, st, "n1", jobs.Kind{Name: "flaky", MaxAttempts: 3, Run: func(context.Context, *jobs.Task) error {
		attempts.Add(1)
		return jobs.Retry(time.Millisecond, errors.New("Jira answered 503"))
	}})
	j, err := r.Submit(t.Context(), jobs.Spec{Kind: "flaky"})
	require.NoError(t, err)
	got := wait(t, r, j.ID)
	require.Equal(t, store.JobFailed, got.State)
	require.Equal(t, "Jira answered 503", got.Error)
	require.Equal(t, int32(3), attempts.Load())
}

// A runner deletes finished jobs past the retention when it starts (and then
// hourly), keeping each kind's latest.
func TestFinishedJobsArePruned(t *testing.T) {
	st := openStore(t)
	done := jobs.Kind{Name: "work", Run: func(context.Context, *jobs.Task) error { return nil }}
	first := start(t, st, "n1", done)
	var ids []string
	for range 3 {
		j, err := first.Submit(t.Context(), jobs.Spec{Kind: "work"})
		require.NoError(t, err)
		require.Equal(t, store.JobSucceeded, wait(t, first, j.ID).State)
		ids = append(ids, j.ID)
	}
	first.Stop()
	time.Sleep(10 * time.Millisecond)

	second := jobs.New(st, jobs.Options{Node: "n2", Retention: time.Millisecond, Poll: 20 * time.Millisecond})
	second.Register(done)
	require.NoError(t, second.Start(t.Context()))
	t.Cleanup(second.Stop)
	require.Eventually(t, func() bool {
		left, err := st.ListJobs(t.Context(), store.JobFilter{})
		return err == nil && len(left) == 1 && left[0].ID == ids[2]
	}, 10*time.Second, 20*time.Millisecond)
}
