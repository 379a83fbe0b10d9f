// Package ordered runs one stage of a stream's work on a few goroutines while
// the producer goes on, and hands the results on one at a time, in the order
// the items came. At most Ahead items wait, so memory stays bounded and a slow
// consumer slows the producer down.
package ordered

import "sync/atomic"

// Pipeline is one such stage. Set its fields, then Push items and Drain once.
// Emit runs on one goroutine, never concurrently with itself.
type Pipeline[In, Out any] struct {
	Workers, Ahead int
	Work           func(In) Out
	Emit           func(Out) error
	// Discard, if set, receives each result that is not emitted because an
	// earlier Emit failed (to release what it holds).
	Discard func(Out)

	jobs    chan *job[In, Out]
	order   chan *job[In, Out]
	emitted chan struct{}
	failed  atomic.Pointer[error]
}

type job[In, Out any] struct {
	in   In
	out  Out
	done chan struct{}
}

// Push queues an item, blocking while Ahead items wait. Once an Emit has
// failed it refuses the item (the caller keeps it) with that error.
func (p *Pipeline[In, Out]) Push(in In) error {
	if err := p.Err(); err != nil {
		return err
	}
	if p.jobs == nil {
		p.jobs, p.order, p.emitted = make(chan *job[In, Out]), make(chan *job[In, Out], p.Ahead), make(chan struct{})
		for range max(p.Workers, 1) {
			go p.work(p.jobs)
		}
		go p.emitAll(p.order, p.emitted)
	}
	j := &job[In, Out]{in: in, done: make(chan struct{})}
	p.order <- j
	p.jobs <- j
	return nil
}

func (p *Pipeline[In, Out]) work(jobs <-chan *job[In, Out]) {
	for j := range jobs {
		j.out = p.Work(j.in)
		close(j.done)
	}
}

func (p *Pipeline[In, Out]) emitAll(order <-chan *job[In, Out], emitted chan<- struct{}) {
	defer close(emitted)
	for j := range order {
		<-j.done
		if p.Err() != nil {
			if p.Discard != nil {
				p.Discard(j.out)
			}
			continue // keep draining so no worker blocks
		}
		if err := p.Emit(j.out); err != nil {
			p.failed.Store(&err)
		}
	}
}

// Drain waits until everything pushed is emitted (or discarded) and returns
// the first Emit failure. The pipeline can be used again afterwards.
func (p *Pipeline[In, Out]) Drain() error {
	if p.jobs != nil {
		close(p.jobs)
		close(p.order)
		<-p.emitted
		p.jobs = nil
	}
	return p.Err()
}

// Err is the first Emit failure, if any.
func (p *Pipeline[In, Out]) Err() error {
	if e := p.failed.Load(); e != nil {
		return *e
	}
	return nil
}
