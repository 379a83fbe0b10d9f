package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// readRSS returns the resident set size of pid in bytes (VmRSS).
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := strings.Fields(string(rest))
			if len(f) < 1 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS of %d: %w", pid, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// readCPUTicks returns utime+stime of pid in clock ticks (1/100 s).
// readStealTicks returns the machine's CPU steal time so far, in clock
// ticks summed over its CPUs (/proc/stat): time the host ran something else
// while this machine's CPUs had work.
func readStealTicks() (int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("malformed /proc/stat")
	}
	return strconv.ParseInt(f[8], 10, 64)
}

func readCPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may contain spaces: fields
	// start after the last ')'. utime and stime are fields 14 and 15, i.e.
	// the 12th and 13th after the name.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return ut + st, nil
}

// rssSampler records the peak VmRSS of a process, sampled periodically.
type rssSampler struct {
	pid  int
	mu   sync.Mutex
	peak int64
	n    int
	stop chan struct{}
	done chan struct{}
}

// sampleRSS starts sampling pid every interval until Stop.
func sampleRSS(pid int, interval time.Duration) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	v, err := readRSS(s.pid)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.peak = max(s.peak, v)
	s.n++
	s.mu.Unlock()
}

// Stop ends sampling (with one last sample) and returns the peak in bytes
// and the number of samples taken.
func (s *rssSampler) Stop() (peak int64, samples int) {
	close(s.stop)
	<-s.done
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.n
}

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
		t, err := readCPUTicks(pid)
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
			if v, err := readCPUTicks(pid); err == nil {
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
