package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrQueueFull: every slot is taken and Options.MaxQueue queries already wait.
var ErrQueueFull = errors.New("the query queue is full")

// ErrQueueTimeout: a query waited Options.MaxWait for a slot.
var ErrQueueTimeout = errors.New("no query slot became free in time")

// scheduler hands out the engine's query slots — one per pooled connection —
// so that one user cannot starve the others:
//   - a user holds at most perUser slots at once (more of their queries wait);
//   - the last `reserved` free slots go only to users who hold none (an
//     admin's SELECT 42 or anyone's first query never waits behind one
//     analyst's heavy queries);
//   - a freed slot goes to the waiting user who holds the fewest, then to the
//     longest waiting (round robin across users, not first come first served);
//   - at most maxQueue queries wait, each at most maxWait.
type scheduler struct {
	perUser, reserved, maxQueue int
	maxWait                     time.Duration

	mu      sync.Mutex
	free    int
	held    map[string]int
	waiting []*waiter
	seq     uint64
}

type waiter struct {
	user  string
	seq   uint64
	ready chan struct{}
}

func newScheduler(slots, perUser, reserved, maxQueue int, maxWait time.Duration) *scheduler {
	return &scheduler{free: slots, perUser: perUser, reserved: reserved, maxQueue: maxQueue, maxWait: maxWait,
		held: map[string]int{}}
}

// may reports whether user may take a free slot now (with s.mu held).
func (s *scheduler) may(user string) bool {
	return s.held[user] < s.perUser && (s.free > s.reserved || (s.free > 0 && s.held[user] == 0))
}

// acquire waits for a slot for user; the returned func gives it back.
func (s *scheduler) acquire(ctx context.Context, user string) (func(), error) {
	s.mu.Lock()
	if len(s.waiting) >= s.maxQueue {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w (%d queries already wait, query.max_queue)", ErrQueueFull, s.maxQueue)
	}
	s.seq++
	w := &waiter{user: user, seq: s.seq, ready: make(chan struct{})}
	s.waiting = append(s.waiting, w)
	s.dispatch() // a free slot this user may take goes to them now, unless a fairer waiter is first
	s.mu.Unlock()

	timer := time.NewTimer(s.maxWait)
	defer timer.Stop()
	select {
	case <-w.ready:
		return func() { s.release(user) }, nil
	case <-ctx.Done():
		if s.abandon(w) {
			return nil, ctx.Err()
		}
	case <-timer.C:
		if s.abandon(w) {
			return nil, fmt.Errorf("%w (waited %s, query.max_wait)", ErrQueueTimeout, s.maxWait)
		}
	}
	// Handed a slot while giving up: give it back.
	s.release(user)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("%w (waited %s, query.max_wait)", ErrQueueTimeout, s.maxWait)
}

func (s *scheduler) take(user string) {
	s.free--
	s.held[user]++
}

// abandon removes a waiter; false when it was handed a slot meanwhile.
func (s *scheduler) abandon(w *waiter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.waiting {
		if x == w {
			s.waiting = append(s.waiting[:i], s.waiting[i+1:]...)
			return true
		}
	}
	return false
}

func (s *scheduler) release(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[user]--; s.held[user] <= 0 {
		delete(s.held, user)
	}
	s.free++
	s.dispatch()
}

// dispatch hands free slots to waiters, fewest held first, then oldest.
func (s *scheduler) dispatch() {
	for s.free > 0 && len(s.waiting) > 0 {
		best := -1
		for i, w := range s.waiting {
			if !s.may(w.user) {
				continue
			}
			if best < 0 || s.held[w.user] < s.held[s.waiting[best].user] ||
				(s.held[w.user] == s.held[s.waiting[best].user] && w.seq < s.waiting[best].seq) {
				best = i
			}
		}
		if best < 0 {
			return // every waiter holds their share, or what is free is reserved
		}
		w := s.waiting[best]
		s.waiting = append(s.waiting[:best], s.waiting[best+1:]...)
		s.take(w.user)
		close(w.ready)
	}
}
