package querysvc

import "sync/atomic"

// ordered encodes items on a few goroutines while the producer goes on, and emits
// the results one at a time in the order the items came. At most ahead items wait,
// so memory stays bounded and a slow client slows the producer (DuckDB) down.
type ordered[In, Out any] struct {
	workers, ahead int
	encode         func(In) Out
	emit           func(Out) error

	jobs    chan *orderedJob[In, Out]
	order   chan *orderedJob[In, Out]
	emitted chan struct{}
	failed  atomic.Pointer[error]
}

type orderedJob[In, Out any] struct {
	in   In
	out  Out
	done chan struct{}
}

// push queues an item; it fails once an emit has failed.
func (o *ordered[In, Out]) push(in In) error {
	if err := o.err(); err != nil {
		return err
	}
	if o.jobs == nil {
		o.jobs, o.order, o.emitted = make(chan *orderedJob[In, Out]), make(chan *orderedJob[In, Out], o.ahead), make(chan struct{})
		for range o.workers {
			go o.work(o.jobs)
		}
		go o.emitAll(o.order, o.emitted)
	}
	job := &orderedJob[In, Out]{in: in, done: make(chan struct{})}
	o.order <- job // blocks while ahead items wait
	o.jobs <- job
	return nil
}

func (o *ordered[In, Out]) work(jobs <-chan *orderedJob[In, Out]) {
	for job := range jobs {
		job.out = o.encode(job.in)
		close(job.done)
	}
}

func (o *ordered[In, Out]) emitAll(order <-chan *orderedJob[In, Out], emitted chan<- struct{}) {
	defer close(emitted)
	for job := range order {
		<-job.done
		if o.err() != nil {
			continue // keep draining so no worker blocks
		}
		if err := o.emit(job.out); err != nil {
			o.failed.Store(&err)
		}
	}
}

// drain waits until everything pushed is emitted and reports an emit failure.
func (o *ordered[In, Out]) drain() error {
	if o.jobs != nil {
		close(o.jobs)
		close(o.order)
		<-o.emitted
		o.jobs = nil
	}
	return o.err()
}

func (o *ordered[In, Out]) err() error {
	if p := o.failed.Load(); p != nil {
		return *p
	}
	return nil
}
