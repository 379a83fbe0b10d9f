package syncer

import (
	"context"
	"slices"
	"sync"

	"github.com/agnesdata/agnes/server/internal/store"
)

// run is a job in progress: its state, guarded, and the watchers to tell.
type run struct {
	mu   sync.Mutex
	job  store.SyncJob
	subs []chan store.SyncJob
	done bool
}

func newRun(job store.SyncJob) *run { return &run{job: job} }

func (r *run) snapshot() store.SyncJob {
	r.mu.Lock()
	defer r.mu.Unlock()
	return clone(r.job)
}

func clone(j store.SyncJob) store.SyncJob {
	j.Tables = slices.Clone(j.Tables)
	return j
}

// update changes the job and tells every watcher. A slow watcher only ever misses
// intermediate states (its buffer holds the newest), never the final one.
func (r *run) update(f func(*store.SyncJob)) store.SyncJob {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.job)
	snap := clone(r.job)
	for _, ch := range r.subs {
		select {
		case <-ch: // drop the stale state
		default:
		}
		ch <- clone(snap)
	}
	if snap.Finished() {
		r.done = true
		for _, ch := range r.subs {
			close(ch)
		}
		r.subs = nil
	}
	return snap
}

func (r *run) subscribe(ctx context.Context) <-chan store.SyncJob {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(chan store.SyncJob, 1)
	out <- clone(r.job)
	if r.done {
		close(out)
		return out
	}
	in := make(chan store.SyncJob, 1)
	r.subs = append(r.subs, in)
	// Relay through a second channel so a watcher that goes away (ctx done) is
	// unsubscribed and the job never blocks on it.
	relay := make(chan store.SyncJob, 1)
	go func() {
		defer close(relay)
		first := <-out
		select {
		case relay <- first:
		case <-ctx.Done():
			r.unsubscribe(in)
			return
		}
		for {
			select {
			case j, ok := <-in:
				if !ok {
					return
				}
				select {
				case relay <- j:
				case <-ctx.Done():
					r.unsubscribe(in)
					return
				}
			case <-ctx.Done():
				r.unsubscribe(in)
				return
			}
		}
	}()
	return relay
}

func (r *run) unsubscribe(ch chan store.SyncJob) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := slices.Index(r.subs, ch); i >= 0 {
		r.subs = slices.Delete(r.subs, i, i+1)
	}
}
