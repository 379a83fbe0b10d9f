package harness

import (
	"sync"
	"time"

	"github.com/agnesdata/agnes/internal/procfs"
)

// cpuSample is one reading of a process's CPU time.
type cpuSample struct {
	at    time.Time
	ticks int64
}

// waitCPUQuiet waits until pid's CPU time grows by at most maxTicks over
// window, or timeout passes. It returns when the quiet window began.
func waitCPUQuiet(pid int, window time.Duration, maxTicks int64, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	var samples []cpuSample
	for {
		t, err := procfs.CPUTicks(pid)
		if err != nil {
			return time.Now(), false
		}
		now := time.Now()
		samples = append(samples, cpuSample{now, t})
		if start, ok := quietSince(samples, window, maxTicks); ok {
			return start, true
		}
		if now.After(deadline) {
			return now, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quietSince reports whether the samples end with a window of at least
// `window` during which CPU time grew by at most maxTicks, and when that
// quiet stretch began (the earliest such sample).
func quietSince(samples []cpuSample, window time.Duration, maxTicks int64) (time.Time, bool) {
	if len(samples) == 0 {
		return time.Time{}, false
	}
	last := samples[len(samples)-1]
	s := len(samples) - 1
	for s > 0 && last.ticks-samples[s-1].ticks <= maxTicks {
		s--
	}
	if last.at.Sub(samples[s].at) >= window {
		return samples[s].at, true
	}
	return time.Time{}, false
}

// cpuRecorder samples a process's CPU time in the background.
type cpuRecorder struct {
	mu      sync.Mutex
	samples []cpuSample
	stop    chan struct{}
	done    chan struct{}
}

func recordCPU(pid int, interval time.Duration) *cpuRecorder {
	c := &cpuRecorder{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if v, err := procfs.CPUTicks(pid); err == nil {
				c.mu.Lock()
				c.samples = append(c.samples, cpuSample{time.Now(), v})
				c.mu.Unlock()
			}
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
		}
	}()
	return c
}

// Stop ends the sampling.
func (c *cpuRecorder) Stop() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// Since returns a copy of the samples taken at or after t.
func (c *cpuRecorder) Since(t time.Time) []cpuSample {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []cpuSample
	for _, s := range c.samples {
		if !s.at.Before(t) {
			out = append(out, s)
		}
	}
	return out
}

// At is the reading of the last sample taken at or before t.
func (c *cpuRecorder) At(t time.Time) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var v int64
	for _, s := range c.samples {
		if s.at.After(t) {
			break
		}
		v = s.ticks
	}
	return v
}
