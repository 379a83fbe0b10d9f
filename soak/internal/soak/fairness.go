package soak

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/agnesdata/agnes/internal/procfs"
)

// heavySQL is an endless cross join (10¹⁶ rows) that only the query time
// limit, or the client going away, stops: all the CPU DuckDB is given, for
// as long as it runs.
const heavySQL = "SELECT count(*) FROM range(100000000) a(i), range(100000000) b(j) WHERE (i + j) % 7 = 3"

// runFairness: one user keeps 4 heavy queries going (their whole
// per_user_concurrency) while another user's SELECT 1 is timed, first on
// an idle server, then on the loaded one.
func runFairness(ctx context.Context, e *env) error {
	z := e.Sizes
	config := fmt.Sprintf(`demo: false
query:
  per_user_concurrency: 4
  timeout: %s
  max_wait: %s
`, z.HeavyTimeout, z.MaxWait)
	s, err := e.start(ctx, config)
	if err != nil {
		return err
	}
	defer s.Stop()
	_, tokens, err := setup(ctx, s, "heavy", "probe")
	if err != nil {
		return err
	}
	probe := NewClient(s.URL, "")
	for range 20 { // warm-up: connections, the sandbox's cache
		if _, err := probe.Query(ctx, tokens["probe"], "SELECT 1", 0); err != nil {
			return err
		}
	}
	idle, idleFailed, err := timeProbes(ctx, probe, tokens["probe"], z.Probes)
	if err != nil {
		return err
	}

	hctx, stopHeavy := context.WithCancel(ctx)
	defer stopHeavy()
	heavy := NewClient(s.URL, "")
	var mu sync.Mutex
	outcomes := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for hctx.Err() == nil {
				res, err := heavy.Query(hctx, tokens["heavy"], heavySQL, 0)
				if hctx.Err() != nil {
					return
				}
				outcome := ""
				if err != nil {
					outcome = err.Error()
				} else {
					outcome = fmt.Sprintf("HTTP %d %s", res.Status, truncate(res.Detail(), 90))
				}
				mu.Lock()
				outcomes[outcome]++
				mu.Unlock()
				if err != nil || res.Status != http.StatusGatewayTimeout {
					time.Sleep(100 * time.Millisecond) // refused at once: do not spin
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond) // the heavy queries take their slots and the CPUs
	cpu0, err := procfs.CPU(s.Pid())
	if err != nil {
		return err
	}
	start := time.Now()
	loaded, loadedFailed, err := timeProbes(ctx, probe, tokens["probe"], z.Probes)
	if err != nil {
		return err
	}
	cpu1, err := procfs.CPU(s.Pid())
	if err != nil {
		return err
	}
	cores := float64(cpu1-cpu0) / float64(time.Since(start))
	stopHeavy()
	wg.Wait()
	quiet, err := waitQuiet(s.Pid(), 30*time.Second)
	if err != nil {
		return err
	}

	t := e.sc.table("SELECT 1 of user probe, one after the other (REST POST /api/query)",
		"phase", "answered", "failed", "p50", "p90", "p99", "max")
	for _, p := range []struct {
		name   string
		took   []time.Duration
		failed map[string]int
	}{{"idle server", idle, idleFailed}, {"4 heavy queries of user heavy running", loaded, loadedFailed}} {
		t.row(p.name, fmt.Sprint(len(p.took)), summarize(p.failed), ms(quantile(p.took, 0.5)), ms(quantile(p.took, 0.9)),
			ms(quantile(p.took, 0.99)), ms(quantile(p.took, 1)))
	}
	h := e.sc.table("The heavy user's queries (4 at a time, each started again when it ends)", "answer", "count")
	for k, n := range outcomes {
		h.row(k, fmt.Sprint(n))
	}
	h.row("still running when the measurement ended (the client went away)", "4")
	e.sc.note("heavy query: %s", heavySQL)
	e.sc.note("after the heavy user's clients went away the server's CPU was idle again within %s "+
		"(the server cancels a query whose client is gone)", quiet.Round(10*time.Millisecond))
	e.sc.target("the other user is never refused", "every SELECT 1 answered 200 (no 429/503 while the heavy user holds its share)",
		fmt.Sprintf("%d of %d; failures: %s", len(loaded), z.Probes, cmp.Or(summarize(loadedFailed), "none")), len(loaded) == z.Probes)
	p99 := quantile(loaded, 0.99)
	check := e.sc.target
	if e.Short {
		check = e.sc.report
	}
	check("SELECT 1 p99 while loaded", "≤ 50 ms", fmt.Sprintf("%s (idle: p50 %s, p99 %s)", ms(p99), ms(quantile(idle, 0.5)), ms(quantile(idle, 0.99))),
		p99 <= 50*time.Millisecond && len(loaded) > 0)
	check("the server was loaded", "≥ 1 CPU core busy while measuring", fmt.Sprintf("%.2f cores", cores), cores >= 1)
	return nil
}

// timeProbes runs n SELECT 1 one after the other and times the answered ones.
func timeProbes(ctx context.Context, c *Client, token string, n int) ([]time.Duration, map[string]int, error) {
	var took []time.Duration
	failed := map[string]int{}
	for range n {
		start := time.Now()
		res, err := c.Query(ctx, token, "SELECT 1", 0)
		if err != nil {
			return nil, nil, err
		}
		if res.Status != http.StatusOK {
			failed[fmt.Sprintf("HTTP %d %s", res.Status, truncate(res.Detail(), 90))]++
			continue
		}
		took = append(took, time.Since(start))
		time.Sleep(20 * time.Millisecond) // spread over the heavy queries' lives
	}
	return took, failed, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// waitQuiet waits until pid uses less than a tenth of a core over 500 ms,
// and returns how long that took.
func waitQuiet(pid int, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for time.Since(start) < timeout {
		c0, err := procfs.CPU(pid)
		if err != nil {
			return 0, err
		}
		time.Sleep(500 * time.Millisecond)
		c1, err := procfs.CPU(pid)
		if err != nil {
			return 0, err
		}
		if c1-c0 < 50*time.Millisecond {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("the server still used the CPU %s after the heavy queries' clients went away", timeout)
}
