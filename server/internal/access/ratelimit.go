package access

import (
	"sync"
	"time"

	"github.com/agnesdata/agnes/server/internal/lru"
	"golang.org/x/time/rate"
)

// RateLimiter keeps one token bucket per (procedure, client IP). Idle buckets are
// swept so that a scan from many addresses cannot grow memory without bound.
type RateLimiter struct {
	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
	now       func() time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewRateLimiter returns an empty limiter.
func NewRateLimiter() *RateLimiter {
	return &RateLimiter{buckets: map[string]*bucket{}, now: time.Now}
}

// Allow takes a token from the bucket of (procedure, ip), which refills at perMinute
// per minute with a burst of perMinute. When refused it says how long to wait.
func (l *RateLimiter) Allow(procedure, ip string, perMinute int) (time.Duration, bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > 2*time.Minute {
				delete(l.buckets, k)
			}
		}
		l.lastSweep = now
	}
	key := procedure + "|" + ip
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(float64(perMinute)/60), perMinute)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// The per-account sign-in throttle: after AccountFailures failed sign-ins for one
// account within AccountFailureWindow, further attempts are refused (429) until
// the window lets one more through, whatever addresses they come from. It
// complements the per-address limits of the sign-in RPCs.
const (
	AccountFailures      = 10
	AccountFailureWindow = 15 * time.Minute
	accountMemory        = 100_000 // accounts remembered (least recently failed dropped)
)

// AccountThrottle counts failed sign-ins per account.
type AccountThrottle struct {
	mu      sync.Mutex // get-or-create of an account's bucket
	buckets *lru.Cache[string, *rate.Limiter]
	now     func() time.Time
}

// NewAccountThrottle returns an empty throttle.
func NewAccountThrottle() *AccountThrottle {
	return &AccountThrottle{buckets: lru.New[string, *rate.Limiter](accountMemory), now: time.Now}
}

// Attempt counts a sign-in attempt of the account as a failure before its
// password is checked, so that concurrent attempts cannot all pass the
// throttle while the first checks are still running, or says how long to
// wait. Call undo when the attempt did not fail: it succeeded, or no
// password was checked.
func (t *AccountThrottle) Attempt(account string) (undo func(), wait time.Duration, ok bool) {
	t.mu.Lock()
	lim, found := t.buckets.Get(account)
	if !found {
		lim = rate.NewLimiter(rate.Every(AccountFailureWindow/AccountFailures), AccountFailures)
		t.buckets.Put(account, lim)
	}
	t.mu.Unlock()
	now := t.now()
	r := lim.ReserveN(now, 1)
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now)
		return nil, wait, false
	}
	// Cancelled as of the moment it was taken: rate refuses to cancel a
	// reservation later than it acted.
	return func() { r.CancelAt(now) }, 0, true
}
