package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agnesdata/agnes/server/internal/lru"
)

// Errors a query can end with, besides *QueryError.
var (
	ErrTooManyQueries = errors.New("too many queries running for this user")
	ErrTimeout        = errors.New("query timed out")
	ErrCanceled       = errors.New("query canceled")
	ErrInvalidQuery   = errors.New("not a single SELECT statement")
	ErrNotLoaded      = errors.New("query engine has no data loaded yet")
	ErrClosed         = errors.New("query engine is closed")
)

// Options tunes an Engine. Zero values take the defaults.
type Options struct {
	// MaxConns is the connection pool size of a generation; queries beyond
	// it wait for a connection. Default 2×GOMAXPROCS.
	MaxConns int
	// MaxUserQueries caps the queries one user runs at once; more fail
	// with ErrTooManyQueries. Default 4; negative means no cap.
	MaxUserQueries int
	// MaxRows, MaxBytes and Timeout are the limits of a query whose
	// RunOptions leave them zero. Defaults 100 000 rows, 64 MiB, 60 s.
	MaxRows  int64
	MaxBytes int64
	Timeout  time.Duration
	// PerUserSlots caps the slots (pooled connections) one user's queries
	// hold at once. Default half the pool (at least 1).
	PerUserSlots int
	// ReservedSlots are kept for users who hold none, so one user's heavy
	// queries never make another user's first query wait. Default 1 when the
	// pool has at least 2 connections.
	ReservedSlots int
	// MaxQueue bounds the queries waiting for a slot (beyond: ErrQueueFull);
	// MaxWait bounds one query's wait (ErrQueueTimeout). Defaults 4×MaxConns
	// and 30 s.
	MaxQueue int
	MaxWait  time.Duration
	// MemoryLimit is DuckDB's memory_limit for each generation, e.g. "4GB".
	// Default: DuckDB's own (80% of RAM).
	MemoryLimit string
	// Threads is DuckDB's threads for each generation. Default: DuckDB's own
	// (the CPUs).
	Threads int
	// TempDir is where DuckDB spills (temp_directory), and MaxTempSize caps
	// it (max_temp_directory_size, e.g. "10GB"). Defaults: DuckDB's own.
	TempDir     string
	MaxTempSize string
	// Getenv reads the tokens of remote sources. Default os.Getenv.
	Getenv func(string) string
	// Logger receives what has no caller to return to: failures to close
	// or delete a retired generation. Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxConns <= 0 {
		o.MaxConns = 2 * runtime.GOMAXPROCS(0)
	}
	if o.MaxUserQueries == 0 {
		o.MaxUserQueries = 4
	}
	if o.PerUserSlots <= 0 {
		o.PerUserSlots = max(1, o.MaxConns/2)
	}
	if o.ReservedSlots <= 0 && o.MaxConns >= 2 {
		o.ReservedSlots = 1
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = 4 * o.MaxConns
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 30 * time.Second
	}
	if o.MaxRows <= 0 {
		o.MaxRows = 100_000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 64 << 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Engine runs queries on the newest generation of the master database.
// All methods are safe for concurrent use.
type Engine struct {
	opts Options

	loadMu  sync.Mutex // one Load at a time
	mu      sync.Mutex
	cur     *generation
	closed  bool
	running map[string]int // queries in flight per user

	// slots are the pool's connections, handed out fairly across users.
	slots *scheduler

	// selects remembers query texts DuckDB's parser accepted as exactly one
	// SELECT: the verdict depends on the text alone, so a repeated query skips
	// the parse (a prepare and an execute of its own).
	selects *lru.Cache[string, struct{}]
}

// New returns an Engine with no generation; queries fail with ErrNotLoaded
// until the first Load.
func New(opts Options) *Engine {
	o := opts.withDefaults()
	return &Engine{opts: o, running: map[string]int{}, selects: lru.New[string, struct{}](4096),
		slots: newScheduler(o.MaxConns, o.PerUserSlots, o.ReservedSlots, o.MaxQueue, o.MaxWait)}
}

// Load opens the master at path as generation gen and makes it the one new
// queries use. path must be a per-generation file (Result.Master from the
// orchestrator): the engine deletes it once the generation is replaced and
// idle. The previous generation keeps serving its in-flight queries.
//
// A generation not newer than the current one is ignored: coalesced
// rebuilds hand the same Result to several callers, and the current path
// is already open.
//
// Sources or remotes that fail to attach do not fail the load (their views
// will fail at query time); they are returned as warnings. Load fails, and
// the current generation stays, if the master cannot be opened or hardened.
func (e *Engine) Load(ctx context.Context, path string, gen uint64) ([]string, error) {
	e.loadMu.Lock()
	defer e.loadMu.Unlock()
	e.mu.Lock()
	closed, cur := e.closed, e.cur
	e.mu.Unlock()
	switch {
	case closed:
		return nil, ErrClosed
	case cur != nil && gen <= cur.num:
		return nil, nil
	}
	g, warnings, err := openGeneration(ctx, path, gen, e.opts)
	if err != nil {
		return warnings, err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.closeGeneration(g)
		return warnings, ErrClosed
	}
	old := e.cur
	e.cur = g
	idle := false
	if old != nil {
		old.retired, old.deleteFile = true, true
		idle = old.refs == 0
	}
	e.mu.Unlock()
	if idle {
		e.closeGeneration(old)
	}
	return warnings, nil
}

// Close stops new queries. Queries in flight finish; the last one closes
// the generation. The current generation's file is kept.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	g := e.cur
	e.cur = nil
	idle := g != nil && g.refs == 0
	if g != nil {
		g.retired = true
	}
	e.mu.Unlock()
	if idle {
		return g.close()
	}
	return nil
}

// Generation returns the number of the current generation, 0 before the
// first Load.
func (e *Engine) Generation() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == nil {
		return 0
	}
	return e.cur.num
}

// Views returns the names of the current generation's views, sorted.
func (e *Engine) Views() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == nil {
		return nil
	}
	return slices.Clone(e.cur.names)
}

// LookupView resolves a table reference to a view of the current generation
// the way DuckDB does, ignoring case, and returns the view's own spelling.
func (e *Engine) LookupView(name string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == nil {
		return "", false
	}
	v, ok := e.cur.views[strings.ToLower(name)]
	return v, ok
}

// acquire returns the current generation with a reference held.
func (e *Engine) acquire() (*generation, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closed:
		return nil, ErrClosed
	case e.cur == nil:
		return nil, ErrNotLoaded
	}
	e.cur.refs++
	return e.cur, nil
}

// release drops a reference; the last one on a retired generation closes it.
func (e *Engine) release(g *generation) {
	e.mu.Lock()
	g.refs--
	last := g.retired && g.refs == 0
	e.mu.Unlock()
	if last {
		e.closeGeneration(g)
	}
}

func (e *Engine) closeGeneration(g *generation) {
	if err := g.close(); err != nil {
		e.opts.Logger.Error("close query engine generation", "generation", g.num, "err", err)
	}
}

// Admit counts a query against its user's cap (Options.MaxUserQueries) until
// the returned func is called: a caller that holds a query's answer after the
// query ended (to write it to a slow client) admits it itself, keeps the
// ticket until the answer is written, and runs the query with
// RunOptions.Admitted.
func (e *Engine) Admit(user string) (func(), error) { return e.admit(user) }

// admit counts a query against its user's cap; the returned func un-counts it.
func (e *Engine) admit(user string) (func(), error) {
	if user == "" || e.opts.MaxUserQueries < 0 {
		return func() {}, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running[user] >= e.opts.MaxUserQueries {
		return nil, fmt.Errorf("%w (at most %d at once, query.per_user_concurrency)", ErrTooManyQueries, e.opts.MaxUserQueries)
	}
	e.running[user]++
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.running[user]--; e.running[user] == 0 {
			delete(e.running, user)
		}
	}, nil
}
