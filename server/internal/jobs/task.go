package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agnesdata/agnes/server/internal/store"
)

// Partial ends a job as partial (some of its work failed) with err's message.
func Partial(err error) error { return &partialError{err} }

type partialError struct{ err error }

func (e *partialError) Error() string { return e.err.Error() }
func (e *partialError) Unwrap() error { return e.err }

// Retry puts the job back to wait for after (its kind's MaxAttempts permitting;
// the last attempt's error then ends it failed).
func Retry(after time.Duration, err error) error { return &retryError{after: after, err: err} }

type retryError struct {
	after time.Duration
	err   error
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// Task is a job running here, as its handler sees it.
type Task struct {
	r *Runner

	ctx    context.Context
	cancel context.CancelCauseFunc

	mu   sync.Mutex
	job  *store.Job
	subs []chan *store.Job
	done bool
}

// errCancelled is the cause of a task's context when the job was cancelled
// (not when the runner stopped).
var errCancelled = errors.New("job cancelled")

func newTask(r *Runner, j *store.Job) *Task {
	ctx, cancel := context.WithCancelCause(r.ctx)
	return &Task{r: r, ctx: ctx, cancel: cancel, job: j}
}

// ID is the job's id.
func (t *Task) ID() string { return t.job.ID }

// CreatedBy is who submitted the job.
func (t *Task) CreatedBy() string { return t.job.CreatedBy }

// Params decodes the job's params into v.
func (t *Task) Params(v any) error {
	if len(t.job.Params) == 0 {
		return nil
	}
	return json.Unmarshal(t.job.Params, v)
}

// Progress decodes the job's current progress into v.
func (t *Task) Progress(v any) error {
	t.mu.Lock()
	raw := t.job.Progress
	t.mu.Unlock()
	if len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// SetProgress publishes the job's progress: watchers see it at once, and it is
// stored (so another process's watchers, and a restart, see it too).
func (t *Task) SetProgress(v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("progress: %w", err)
	}
	t.update(func(j *store.Job) { j.Progress = raw })
	return t.r.store.SaveProgress(context.WithoutCancel(t.ctx), t.job.ID, t.r.owner, raw)
}

func (t *Task) snapshot() *store.Job {
	t.mu.Lock()
	defer t.mu.Unlock()
	return clone(t.job)
}

func clone(j *store.Job) *store.Job {
	c := *j
	c.Keys = slices.Clone(j.Keys)
	return &c
}

// update changes the job and tells every watcher; a watcher's buffer holds the
// newest state only, and the final state always arrives.
func (t *Task) update(f func(*store.Job)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(t.job)
	for _, ch := range t.subs {
		select {
		case <-ch:
		default:
		}
		ch <- clone(t.job)
	}
	if t.job.Finished() {
		t.done = true
		for _, ch := range t.subs {
			close(ch)
		}
		t.subs = nil
	}
}

func (t *Task) subscribe(ctx context.Context) <-chan *store.Job {
	t.mu.Lock()
	in := make(chan *store.Job, 1)
	in <- clone(t.job)
	if t.done {
		close(in)
	} else {
		t.subs = append(t.subs, in)
	}
	t.mu.Unlock()
	// Relay, so a watcher that goes away is unsubscribed and the job never
	// waits on it.
	out := make(chan *store.Job)
	go func() {
		defer close(out)
		for {
			select {
			case j, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- j:
				case <-ctx.Done():
					t.unsubscribe(in)
					return
				}
			case <-ctx.Done():
				t.unsubscribe(in)
				return
			}
		}
	}()
	return out
}

func (t *Task) unsubscribe(ch chan *store.Job) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i := slices.Index(t.subs, ch); i >= 0 {
		t.subs = slices.Delete(t.subs, i, i+1)
	}
}

func (t *Task) stop(reason string) {
	if reason == "" {
		reason = "cancelled"
	}
	t.cancel(fmt.Errorf("%w: %s", errCancelled, reason))
}

// run runs a claimed job to its end: the handler, with its lease renewed meanwhile.
func (r *Runner) run(k *Kind, t *Task) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		r.running[k.Name]--
		delete(r.live, t.job.ID)
		r.mu.Unlock()
		r.poke() // a slot is free
	}()
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		r.renew(t)
	}()
	err := func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("job panicked: %v", v)
				r.log.Error("job panicked", "job", t.job.ID, "kind", k.Name, "value", v)
			}
		}()
		return k.Run(t.ctx, t)
	}()
	cause := context.Cause(t.ctx)
	t.cancel(nil) // stops the renewal
	<-renewed
	r.settle(k, t, err, cause)
}

// renew extends the lease until the task ends; a lost lease or a cancellation
// requested elsewhere stops the task.
func (r *Runner) renew(t *Task) {
	tick := time.NewTicker(r.opts.Lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		cancel, err := r.store.RenewLease(context.WithoutCancel(t.ctx), t.job.ID, r.owner, r.opts.Lease)
		switch {
		case errors.Is(err, store.ErrLeaseLost):
			r.log.Error("job lease lost: another runner took it", "job", t.job.ID)
			t.cancel(store.ErrLeaseLost)
			return
		case err != nil:
			r.log.Warn("renew job lease", "job", t.job.ID, "err", err)
		case cancel:
			t.stop("cancelled")
		}
	}
}

// settle records how the job ended.
func (r *Runner) settle(k *Kind, t *Task, err, cause error) {
	ctx := context.WithoutCancel(t.ctx)
	j := t.snapshot()
	state, msg := store.JobSucceeded, ""
	var partial *partialError
	var retry *retryError
	switch {
	case errors.Is(cause, store.ErrLeaseLost):
		return // not ours any more
	case errors.Is(cause, errCancelled):
		state, msg = store.JobCancelled, cause.Error()
		msg = strings.TrimPrefix(msg, errCancelled.Error()+": ")
	case cause != nil && r.ctx.Err() != nil: // the runner is stopping
		if j.Attempts < k.MaxAttempts {
			r.retry(ctx, t, time.Now(), k.Interrupted)
			return
		}
		state, msg = store.JobCancelled, k.Interrupted
	case errors.As(err, &retry) && j.Attempts < k.MaxAttempts:
		r.retry(ctx, t, time.Now().Add(retry.after), retry.Error())
		return
	case errors.As(err, &partial):
		state, msg = store.JobPartial, partial.Error()
	case err != nil:
		state, msg = store.JobFailed, err.Error()
	}
	now := time.Now().UTC()
	if ferr := r.store.FinishJob(ctx, j.ID, r.owner, state, msg, j.Progress); ferr != nil {
		r.log.Error("finish job", "job", j.ID, "err", ferr)
	}
	t.update(func(j *store.Job) { j.State, j.Error, j.FinishedAt, j.Owner, j.LeaseUntil = state, msg, &now, "", nil })
}

func (r *Runner) retry(ctx context.Context, t *Task, at time.Time, msg string) {
	if err := r.store.RetryJob(ctx, t.job.ID, r.owner, at, msg); err != nil {
		r.log.Error("retry job", "job", t.job.ID, "err", err)
	}
	t.update(func(j *store.Job) {
		j.State, j.Error, j.Owner, j.LeaseUntil, j.RunAfter = store.JobPending, msg, "", nil, at
	})
	// Watchers of a job that will run again later follow it through the store.
	t.mu.Lock()
	for _, ch := range t.subs {
		close(ch)
	}
	t.subs, t.done = nil, true
	t.mu.Unlock()
}
