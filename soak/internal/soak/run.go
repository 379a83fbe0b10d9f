// Package soak starts the real agnes-server binary and attacks it the way
// issue #11 measured: allocation-heavy SQL from a user without grants,
// slow-body connections, one user's heavy queries against another's small
// ones, a client that never reads its answers, sign-in bursts, and kill -9
// during a sync, an upload and a rebuild. Each scenario checks its targets
// and records the figures behind them in a report.
package soak

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Sizes are a run's parameters: Full for make soak, Short for make test.
type Sizes struct {
	// H1: the rows of the queries that are bounded rather than refused.
	BuilderRows, ListRows, DistinctRows, StringAggRows int64
	// Slow bodies: connections, the body deadline, connections per source
	// address and the per-IP cap.
	SlowConns, SlowPerIP, ConnCap int
	BodyTimeout                   time.Duration
	// Fairness: SELECT 1 probes per phase, and the heavy queries' time limit.
	Probes       int
	HeavyTimeout time.Duration
	MaxWait      time.Duration
	// Non-reading client: the byte limit of one answer.
	AnswerBytes int64
	// Sign-in: attempts per burst.
	Burst int
	// Crash: rows of the big CSVs, and the small tables beside them.
	BigRows, SmallTables int
}

// Full is make soak.
var Full = Sizes{
	BuilderRows: 20_000, ListRows: 200_000_000, DistinctRows: 30_000_000, StringAggRows: 9_000,
	SlowConns: 500, SlowPerIP: 100, ConnCap: 120, BodyTimeout: 5 * time.Second,
	Probes: 400, HeavyTimeout: 30 * time.Second, MaxWait: 30 * time.Second,
	AnswerBytes: 64 << 20,
	Burst:       300,
	BigRows:     3_000_000, SmallTables: 30,
}

// Short is the variant inside make test: the same scenarios and
// properties, small sizes, and timing targets reported rather than asserted.
var Short = Sizes{
	BuilderRows: 2_000, ListRows: 2_000_000, DistinctRows: 1_000_000, StringAggRows: 1_000,
	SlowConns: 500, SlowPerIP: 100, ConnCap: 120, BodyTimeout: 2 * time.Second,
	Probes: 100, HeavyTimeout: 10 * time.Second, MaxWait: 3 * time.Second,
	AnswerBytes: 8 << 20,
	Burst:       60,
	BigRows:     1_000_000, SmallTables: 2,
}

// Config is one run.
type Config struct {
	ServerBin string // agnes-server (make build)
	OutDir    string // scenarios' folders and logs
	Sizes     Sizes
	Short     bool            // assert timing targets only loosely
	Only      map[string]bool // scenario ids; empty: all
	Command   string          // how the run was started, for the report
	Logf      func(format string, args ...any)
}

// env is what a scenario runs with.
type env struct {
	Config
	sc *Scenario
}

func (e *env) logf(format string, args ...any) {
	if e.Logf != nil {
		e.Logf("%s: "+format, append([]any{e.sc.ID}, args...)...)
	}
}

// start starts the scenario's server with config and records how.
func (e *env) start(ctx context.Context, config string) (*Server, error) {
	s, err := StartServer(ctx, e.ServerBin, e.sc.ID, filepath.Join(e.OutDir, e.sc.ID), config)
	if s != nil {
		e.sc.Command, e.sc.Config = s.Command(), config
	}
	return s, err
}

type scenario struct {
	id, title string
	run       func(context.Context, *env) error
}

// Scenarios are the ids, in the order they run.
var Scenarios = []string{"h1", "slowbody", "fairness", "stacked", "signin", "crash"}

func scenarios() []scenario {
	return []scenario{
		{"h1", "list and string builders from a user with no grants", runH1},
		{"slowbody", "slow-body anonymous connections", runSlowBody},
		{"fairness", "one user's heavy queries against another user's SELECT 1", runFairness},
		{"stacked", "a client that never reads its answers", runStacked},
		{"signin", "sign-in bursts from one address and from many", runSignIn},
		{"crash", "kill -9 during an upload, a sync and a rebuild", runCrash},
	}
}

// Run runs the selected scenarios one after the other, each against its own
// server, and returns the report (also when ctx ends early).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	for id := range cfg.Only {
		if !strings.Contains(","+strings.Join(Scenarios, ",")+",", ","+id+",") {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", id, strings.Join(Scenarios, ", "))
		}
	}
	if _, err := os.Stat(cfg.ServerBin); err != nil {
		return nil, fmt.Errorf("server binary: %w (run make build)", err)
	}
	defer StopAll()
	rep := &Report{Command: cfg.Command, Short: cfg.Short, Machine: machine(cfg.ServerBin), Started: time.Now()}
	for _, s := range scenarios() {
		if len(cfg.Only) > 0 && !cfg.Only[s.id] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		sc := &Scenario{ID: s.id, Title: s.title}
		rep.Scenarios = append(rep.Scenarios, sc)
		start := time.Now()
		e := &env{Config: cfg, sc: sc}
		e.logf("start")
		if err := s.run(ctx, e); err != nil {
			sc.Error = err.Error()
		}
		StopAll()
		sc.Took = time.Since(start).Round(100 * time.Millisecond).String()
		e.logf("done in %s: %d failure(s)", sc.Took, len(sc.Failed()))
	}
	rep.Took = time.Since(rep.Started).Round(time.Second).String()
	return rep, ctx.Err()
}
