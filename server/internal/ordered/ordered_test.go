package ordered

import (
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

func TestEmitsInOrder(t *testing.T) {
	var got []int
	p := Pipeline[int, int]{Workers: 4, Ahead: 3,
		Work: func(i int) int {
			time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond) // finish out of order
			return i * 10
		},
		Emit: func(o int) error { got = append(got, o); return nil },
	}
	for i := range 500 {
		if err := p.Push(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Drain(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 500 {
		t.Fatalf("emitted %d, want 500", len(got))
	}
	for i, o := range got {
		if o != i*10 {
			t.Fatalf("item %d emitted as %d: out of order", i, o)
		}
	}
}

func TestBoundedAhead(t *testing.T) {
	var inFlight, most atomic.Int64
	release := make(chan struct{})
	p := Pipeline[int, int]{Workers: 2, Ahead: 3,
		Work: func(i int) int {
			n := inFlight.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			return i
		},
		Emit: func(int) error { <-release; inFlight.Add(-1); return nil },
	}
	pushed := make(chan int, 100)
	go func() {
		for i := range 20 {
			_ = p.Push(i)
			pushed <- i
		}
		close(pushed)
	}()
	time.Sleep(50 * time.Millisecond) // the emitter is stuck: the producer must be too
	if n := len(pushed); n > 5 {
		t.Fatalf("producer pushed %d items past a stuck consumer (Ahead 3)", n)
	}
	close(release)
	for range pushed {
	}
	if err := p.Drain(); err != nil {
		t.Fatal(err)
	}
}

func TestFailedEmitStopsAndDiscards(t *testing.T) {
	boom := errors.New("client gone")
	var emitted, discarded atomic.Int64
	p := Pipeline[int, int]{Workers: 2, Ahead: 4,
		Work: func(i int) int { return i },
		Emit: func(o int) error {
			emitted.Add(1)
			if o == 3 {
				return boom
			}
			return nil
		},
		Discard: func(int) { discarded.Add(1) },
	}
	pushed := 0
	for i := range 100 {
		if err := p.Push(i); err != nil {
			if !errors.Is(err, boom) {
				t.Fatalf("push: %v", err)
			}
			break
		}
		pushed++
	}
	if err := p.Drain(); !errors.Is(err, boom) {
		t.Fatalf("drain: %v, want the emit failure", err)
	}
	if emitted.Load() != 4 {
		t.Fatalf("emitted %d, want 4 (nothing after the failure)", emitted.Load())
	}
	if got := emitted.Load() + discarded.Load(); got != int64(pushed) {
		t.Fatalf("%d pushed but %d emitted or discarded", pushed, got)
	}
}
