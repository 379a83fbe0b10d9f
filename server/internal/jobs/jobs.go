// Package jobs is the one runner of background work: syncs, rebuilds, schedules,
// webhook events, periodic checks. A job has a kind (whose handler runs it),
// singleton keys (no two unfinished jobs share one: one sync per source), a
// persisted state and progress that watchers follow, cancellation, and a lease in
// the store, so two processes sharing a store (a sidecar, a second replica) never
// run one job twice: the runner renews the lease while the handler works, and a
// lease that runs out (its process died) makes the job claimable again.
//
// See docs/adr/0013-job-runner.md.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/agnesdata/agnes/server/internal/store"
)

// Kind is one kind of job and how it runs.
type Kind struct {
	// Name is the job kind ("sync", "rebuild", ...).
	Name string
	// Run does the work. ctx ends when the job is cancelled or the runner
	// stops. A nil error ends the job succeeded; see Partial and Retry for
	// the other outcomes; any other error ends it failed with that message.
	Run func(ctx context.Context, t *Task) error
	// Concurrency is how many jobs of this kind one runner runs at once (default 1).
	Concurrency int
	// MaxAttempts is how many leases a job gets before it is given up (default
	// 1: a job whose process died is ended as interrupted, not run again).
	// Retry outcomes count too.
	MaxAttempts int
	// Interrupted is the message a job given up after its process died ends with.
	Interrupted string
}

// Options tune a Runner.
type Options struct {
	// Node names this process's machine (default: the host name). A runner
	// starting on a node reclaims at once the jobs its node's previous process
	// held; other nodes' jobs wait for their leases to run out.
	Node string
	// Lease is how long a claim holds without renewal (default 30 s); renewed at a third of it.
	Lease time.Duration
	// Poll is how often the runner looks for due jobs it was not told about
	// (created by another process, retries coming due; default 1 s).
	Poll time.Duration
	// Retention is how long finished jobs are kept (default 30 days); each
	// kind's latest is kept regardless. Checked hourly.
	Retention time.Duration
	Log       *slog.Logger
}

// Runner runs the jobs of its kinds.
type Runner struct {
	store store.Jobs
	opts  Options
	owner string
	kinds map[string]*Kind
	log   *slog.Logger
	now   func() time.Time

	wake chan struct{}

	mu      sync.Mutex
	running map[string]int   // kind → jobs running here
	live    map[string]*Task // job id → running here
	started bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New returns a runner over a job store. Register kinds, then Start.
func New(st store.Jobs, opts Options) *Runner {
	if opts.Node == "" {
		opts.Node, _ = os.Hostname()
	}
	if opts.Lease <= 0 {
		opts.Lease = 30 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Retention <= 0 {
		opts.Retention = 30 * 24 * time.Hour
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	return &Runner{store: st, opts: opts, owner: opts.Node + "/" + hex.EncodeToString(suffix),
		kinds: map[string]*Kind{}, log: opts.Log, now: time.Now, wake: make(chan struct{}, 1),
		running: map[string]int{}, live: map[string]*Task{}}
}

// Register adds a kind. It must be called before Start.
func (r *Runner) Register(k Kind) {
	if k.Concurrency <= 0 {
		k.Concurrency = 1
	}
	if k.MaxAttempts <= 0 {
		k.MaxAttempts = 1
	}
	if k.Interrupted == "" {
		k.Interrupted = "interrupted: the server stopped while the job ran"
	}
	r.kinds[k.Name] = &k
}

// Start reclaims what this node's previous process left running and starts
// claiming jobs until Stop.
func (r *Runner) Start(ctx context.Context) error {
	if n, err := r.store.ExpireLeases(ctx, r.opts.Node+"/"); err != nil {
		return fmt.Errorf("reclaim jobs: %w", err)
	} else if n > 0 {
		r.log.Warn("jobs left running by a previous process reclaimed", "jobs", n)
	}
	r.mu.Lock()
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.started = true
	r.mu.Unlock()
	r.wg.Add(1)
	go r.loop()
	return nil
}

// Stop cancels running jobs and waits for their handlers to return. Their
// leases are left to run out, so the jobs are reclaimed by the next start.
func (r *Runner) Stop() {
	r.mu.Lock()
	cancel := r.cancel
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	r.wg.Wait()
}

// Spec describes a job to submit.
type Spec struct {
	Kind      string
	Keys      []string
	Params    any // marshalled to JSON
	Progress  any // the initial progress watchers see (JSON)
	CreatedBy string
}

// Submit creates a pending job and wakes the runner. A *store.BusyError when an
// unfinished job holds one of its keys.
func (r *Runner) Submit(ctx context.Context, s Spec) (*store.Job, error) {
	if _, ok := r.kinds[s.Kind]; !ok {
		return nil, fmt.Errorf("submit: unknown job kind %q", s.Kind)
	}
	j := &store.Job{ID: uuid.NewString(), Kind: s.Kind, Keys: s.Keys, CreatedBy: s.CreatedBy, CreatedAt: r.now().UTC()}
	var err error
	if j.Params, err = marshal(s.Params); err != nil {
		return nil, fmt.Errorf("submit %s: params: %w", s.Kind, err)
	}
	if j.Progress, err = marshal(s.Progress); err != nil {
		return nil, fmt.Errorf("submit %s: progress: %w", s.Kind, err)
	}
	if err := r.store.CreateJob(ctx, j); err != nil {
		return nil, err
	}
	j.State, j.RunAfter = store.JobPending, j.CreatedAt
	r.poke()
	return j, nil
}

func marshal(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Get returns a job as it is now: live here, or as stored.
func (r *Runner) Get(ctx context.Context, id string) (*store.Job, error) {
	r.mu.Lock()
	t := r.live[id]
	r.mu.Unlock()
	if t != nil {
		return t.snapshot(), nil
	}
	return r.store.GetJob(ctx, id)
}

// Cancel ends a pending job, or asks a running one to stop (here at once; in
// another process at its next lease renewal).
func (r *Runner) Cancel(ctx context.Context, id, reason string) (*store.Job, error) {
	j, err := r.store.CancelJob(ctx, id, reason)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	t := r.live[id]
	r.mu.Unlock()
	if t != nil {
		t.stop(reason)
	}
	return j, nil
}

// Watch sends a job's states: the current one at once, then every change, and
// closes the channel once the job has ended (or ctx is done). A slow reader
// misses intermediate states, never the last one. A job running here is
// followed live; one pending or running in another process, through the store.
func (r *Runner) Watch(ctx context.Context, id string) (<-chan *store.Job, error) {
	j, err := r.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make(chan *store.Job, 1)
	go func() {
		defer close(out)
		var last *store.Job
		emit := func(j *store.Job) bool {
			if last != nil && j.State == last.State && string(j.Progress) == string(last.Progress) {
				return true
			}
			last = j
			return send(ctx, out, j)
		}
		if !emit(j) {
			return
		}
		for !last.Finished() {
			r.mu.Lock()
			t := r.live[id]
			r.mu.Unlock()
			if t != nil {
				for j := range t.subscribe(ctx) {
					if !emit(j) {
						return
					}
				}
				if last.Finished() {
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(r.opts.Poll / 2):
			}
			j, err := r.Get(ctx, id)
			if err != nil || !emit(j) {
				return
			}
		}
	}()
	return out, nil
}

func send(ctx context.Context, ch chan *store.Job, j *store.Job) bool {
	select {
	case ch <- j:
		return true
	case <-ctx.Done():
		return false
	}
}

// Wait blocks until a job ends and returns its final state.
func (r *Runner) Wait(ctx context.Context, id string) (*store.Job, error) {
	ch, err := r.Watch(ctx, id)
	if err != nil {
		return nil, err
	}
	var last *store.Job
	for j := range ch {
		last = j
	}
	if last == nil || !last.Finished() {
		return last, ctx.Err()
	}
	return last, nil
}

// Running lists the ids of the jobs running here, sorted.
func (r *Runner) Running() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.live))
	for id := range r.live {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// loop claims due jobs of kinds with a free slot, until Stop.
func (r *Runner) loop() {
	defer r.wg.Done()
	tick := time.NewTicker(r.opts.Poll)
	defer tick.Stop()
	var pruned time.Time
	for {
		for r.claimOne() {
		}
		if r.now().Sub(pruned) >= pruneEvery {
			pruned = r.now()
			r.prune()
		}
		select {
		case <-r.ctx.Done():
			return
		case <-r.wake:
		case <-tick.C:
		}
	}
}

// pruneEvery is how often finished jobs past the retention are deleted.
const pruneEvery = time.Hour

// prune deletes finished jobs past the retention: without it the job table
// grows by every sync, poll and check for ever.
func (r *Runner) prune() {
	n, err := r.store.PruneJobs(r.ctx, r.now().Add(-r.opts.Retention))
	switch {
	case err != nil && r.ctx.Err() == nil:
		r.log.Error("prune finished jobs", "err", err)
	case n > 0:
		r.log.Info("finished jobs pruned", "jobs", n, "retention", r.opts.Retention.String())
	}
}

// claimOne starts one due job if a kind has room; it reports whether it did.
func (r *Runner) claimOne() bool {
	r.mu.Lock()
	var free []string
	for name, k := range r.kinds {
		if r.running[name] < k.Concurrency {
			free = append(free, name)
		}
	}
	r.mu.Unlock()
	if len(free) == 0 || r.ctx.Err() != nil {
		return false
	}
	sort.Strings(free)
	j, err := r.store.ClaimJob(r.ctx, store.Claim{Owner: r.owner, Lease: r.opts.Lease, Kinds: free})
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		if r.ctx.Err() == nil {
			r.log.Error("claim job", "err", err)
		}
		return false
	}
	k := r.kinds[j.Kind]
	if j.Attempts > k.MaxAttempts {
		r.giveUp(j, k)
		return true
	}
	t := newTask(r, j)
	r.mu.Lock()
	r.running[j.Kind]++
	r.live[j.ID] = t
	r.mu.Unlock()
	r.wg.Add(1)
	go r.run(k, t)
	return true
}

// giveUp ends a job that has had all its attempts (its last process died).
func (r *Runner) giveUp(j *store.Job, k *Kind) {
	state, msg := store.JobCancelled, k.Interrupted
	if j.Error != "" { // its last attempt asked for a retry: that error stands
		state, msg = store.JobFailed, j.Error
	}
	if err := r.store.FinishJob(r.ctx, j.ID, r.owner, state, msg, nil); err != nil {
		r.log.Error("end interrupted job", "job", j.ID, "err", err)
		return
	}
	r.log.Warn("job given up", "job", j.ID, "kind", j.Kind, "attempts", j.Attempts-1, "reason", msg)
}

// List lists jobs, newest first, with the live state of those running here.
func (r *Runner) List(ctx context.Context, f store.JobFilter) ([]*store.Job, error) {
	list, err := r.store.ListJobs(ctx, f)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, j := range list {
		if t := r.live[j.ID]; t != nil {
			list[i] = t.snapshot()
		}
	}
	return list, nil
}
