package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustAcquire(t *testing.T, s *scheduler, user string) func() {
	t.Helper()
	release, err := s.acquire(t.Context(), user)
	require.NoError(t, err)
	return release
}

// acquireAsync starts an acquire and reports on the channel when it got a slot.
func acquireAsync(s *scheduler, user string) chan func() {
	got := make(chan func(), 1)
	go func() {
		if release, err := s.acquire(context.Background(), user); err == nil {
			got <- release
		}
	}()
	return got
}

func waiting(s *scheduler) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting)
}

func TestOneUserCannotTakeThePool(t *testing.T) {
	s := newScheduler(4, 2, 1, 16, time.Minute)
	a1, a2 := mustAcquire(t, s, "heavy"), mustAcquire(t, s, "heavy")
	third := acquireAsync(s, "heavy")
	require.Eventually(t, func() bool { return waiting(s) == 1 }, time.Second, time.Millisecond)
	// Another user gets a slot at once while the heavy user's third query waits...
	b := mustAcquire(t, s, "analyst")
	// ...and the last free slot is kept for users who hold none.
	second := acquireAsync(s, "analyst")
	require.Eventually(t, func() bool { return waiting(s) == 2 }, time.Second, time.Millisecond)
	admin := mustAcquire(t, s, "admin")
	require.Equal(t, 0, s.free)

	// A freed slot goes to the waiter holding the fewest (the analyst holds 1,
	// heavy 2) — once it is not the reserved last one.
	admin()
	require.Equal(t, 2, waiting(s), "the only free slot is reserved")
	b()
	select {
	case r := <-second:
		r()
	case <-time.After(5 * time.Second):
		t.Fatal("the analyst's second query should have had a freed slot")
	}
	a1()
	r := <-third
	r()
	a2()
	require.Equal(t, 4, s.free)
	require.Empty(t, s.held)
}

func TestQueueIsBounded(t *testing.T) {
	s := newScheduler(1, 1, 0, 1, time.Minute)
	hold := mustAcquire(t, s, "a")
	acquireAsync(s, "b")
	require.Eventually(t, func() bool { return waiting(s) == 1 }, time.Second, time.Millisecond)
	_, err := s.acquire(t.Context(), "c")
	require.ErrorIs(t, err, ErrQueueFull)
	require.ErrorContains(t, err, "query.max_queue")
	hold()
}

func TestWaitIsBounded(t *testing.T) {
	s := newScheduler(1, 1, 0, 4, 20*time.Millisecond)
	hold := mustAcquire(t, s, "a")
	_, err := s.acquire(t.Context(), "b")
	require.ErrorIs(t, err, ErrQueueTimeout)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = s.acquire(ctx, "b")
	require.True(t, errors.Is(err, context.Canceled))
	require.Zero(t, waiting(s), "those who gave up left the queue")
	hold()
	mustAcquire(t, s, "b")()
}
