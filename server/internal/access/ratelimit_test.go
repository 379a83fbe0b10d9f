package access

import (
	"sync"
	"sync/atomic"
	"testing"
)

// Concurrent attempts for one account are counted before any password is
// checked: however many arrive at once, at most AccountFailures go through.
func TestAccountThrottleCountsAttemptsBeforeTheCheck(t *testing.T) {
	th := NewAccountThrottle()
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if _, _, ok := th.Attempt("ana@example.com"); ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != AccountFailures {
		t.Fatalf("%d concurrent attempts went through, want %d", n, AccountFailures)
	}
	if _, wait, ok := th.Attempt("ana@example.com"); ok || wait <= 0 {
		t.Fatalf("attempt after %d failures: ok %v, wait %s; want refused with a wait", AccountFailures, ok, wait)
	}
	if _, _, ok := th.Attempt("bob@example.com"); !ok {
		t.Fatal("another account is throttled too")
	}
}

// An attempt that did not fail (right password, or no check ran) is taken back.
func TestAccountThrottleUndo(t *testing.T) {
	th := NewAccountThrottle()
	for i := range 3 * AccountFailures {
		undo, _, ok := th.Attempt("ana@example.com")
		if !ok {
			t.Fatalf("successful sign-in %d refused", i+1)
		}
		undo()
	}
}
