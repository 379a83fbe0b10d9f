// Package harness is the Agnes benchmark: it builds data with DuckDB, starts
// agnes-server as a child process, runs the scenarios against it over
// Connect and REST next to an in-process duckdb-go baseline (and a plain
// DuckDB-over-HTTP server), and writes a report of medians and ratios.
package harness

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/agnesdata/agnes/internal/procfs"
)

// Scenarios, in the order they run. A–G and K run against the main server
// over table big; H–J against a separate distribution server (dist.go); L
// against a server with a Jira source over a fake Jira (jira.go); M and N
// measure Keboola and BigQuery against fakes of their APIs (sources.go).
var Scenarios = []string{"A", "G", "B", "D", "C", "K", "E", "F", "H", "I", "J", "L", "M", "N"}

// Config is one benchmark run.
type Config struct {
	ServerBin   string // bin/agnes-server
	AgnesBin    string // bin/agnes (scenario J)
	Exe         string // this program, re-run with -serve-plain / -serve-files for the baselines
	OutDir      string // bench/out: report, logs
	DataRoot    string // bench/out/data: cached data sets
	Rows        int64  // rows of table big
	Small       int    // small sources besides the big one
	RebuildData bool
	Keep        bool // keep the servers' state/ and analytics/ folders
	CleanData   bool // delete the generated data set at the end
	Only        map[string]bool
	Connect     string // HTTP1 or H2C: the Connect transport of C, D, E, F

	WarmAgg, ItersAgg         int
	WarmSelect1, ItersSelect1 int
	ItersStream               int
	StreamGenerated           bool          // C: also stream Arrow through the generated client
	StreamSlow                time.Duration // C: a variant slower than this runs once
	FreshServer               bool          // C: restart the main server before each server run
	WarmSmall, ItersSmall     int
	Cancels                   int
	CancelAfter               time.Duration
	Rebuilds, Clients         int
	WarmManifest              int // H
	ItersManifest             int
	WarmDownload              int // I
	ItersDownload             int
	Pulls                     int // J
	ItersExport               int // L
	WarmRemote, ItersRemote   int // M

	Logf func(format string, args ...any)
}

// The SQL of the scenarios.
const (
	aggSQL    = `SELECT category, count(*), sum(amount) FROM big GROUP BY category ORDER BY category`
	select1   = `SELECT 1`
	scanSQL   = `SELECT * FROM big`
	pointSQL  = `SELECT id, category, amount FROM big WHERE id BETWEEN 5000 AND 5009`
	cancelSQL = `SELECT count(*) FROM range(100000000000)`
)

type run struct {
	cfg    Config
	rep    *Report
	data   *Dataset
	in     *InProc
	main   *Server
	a      *Agnes
	plain  *proc
	plainC *http.Client
	logf   func(string, ...any)

	restCompressed bool
	retired        []*Agnes // clients of replaced main servers (for the encodings seen)
}

func (c Config) want(s string) bool { return len(c.Only) == 0 || c.Only[s] }

// wantMain: some scenario of the main server (A–G, K) is selected.
func (c Config) wantMain() bool {
	return slices.ContainsFunc([]string{"A", "B", "C", "D", "E", "F", "G", "K"}, c.want)
}

// Run runs the benchmark. The report is returned even when a scenario fails;
// err is set only when the harness itself cannot go on.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	started := time.Now()
	rep = &Report{Started: started.UTC(), Machine: machineInfo(cfg.ServerBin)}
	steal0, _ := procfs.StealTicks()
	defer func() {
		took := time.Since(started)
		rep.Took = took.Round(time.Second).String()
		// On a shared VM the host takes CPU time away in bursts; how much it
		// took says how far to trust this run's figures.
		if steal1, err := procfs.StealTicks(); err == nil {
			stolen := float64(steal1-steal0) / procfs.ClockTicks
			rep.Machine = append(rep.Machine, [2]string{"CPU time taken by the host (steal)", fmt.Sprintf("%.1f s, %.1f%% of the CPU time of the run", stolen, 100*stolen/(took.Seconds()*float64(runtime.NumCPU())))})
		}
	}()
	r := &run{cfg: cfg, rep: rep, logf: cfg.Logf, plainC: &http.Client{Transport: newTransport(HTTP1)}}
	defer StopAll()

	if _, err := os.Stat(cfg.ServerBin); err != nil {
		return rep, fmt.Errorf("server binary: %w (run make build)", err)
	}
	if cfg.want("J") {
		if _, err := os.Stat(cfg.AgnesBin); err != nil {
			return rep, fmt.Errorf("agnes CLI binary: %w (run make build)", err)
		}
	}
	if cfg.wantMain() {
		if err := r.runMain(ctx); err != nil {
			return rep, err
		}
	}
	if cfg.wantDist() {
		if err := r.runDist(ctx); err != nil {
			return rep, err
		}
	}
	if cfg.want("L") {
		if err := r.scenario(ctx, r.jiraBurst, "L"); err != nil {
			return rep, err
		}
	}
	if cfg.wantSources() {
		if err := r.runSources(ctx); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// scenario runs one measurement (or several measured together), logged and
// timed. A failure becomes an error row for each of names and the run goes
// on; only the run's own end (ctx) stops it.
func (r *run) scenario(ctx context.Context, fn func(context.Context) error, names ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := strings.Join(names, "+")
	r.logf("scenario %s ...", name)
	t := time.Now()
	if err := fn(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, n := range names {
			if r.cfg.want(n) {
				r.rep.errorRow(n, err)
			}
		}
		r.logf("scenario %s: ERROR: %v", name, err)
		return nil
	}
	r.logf("scenario %s done in %s", name, time.Since(t).Round(time.Millisecond))
	return nil
}

// runMain runs scenarios A–G and K against the main server over table big.
func (r *run) runMain(ctx context.Context) (err error) {
	cfg, rep := r.cfg, r.rep
	r.data, err = PrepareData(ctx, cfg.DataRoot, cfg.Rows, cfg.Small, cfg.RebuildData, r.logf)
	if err != nil {
		return err
	}
	if cfg.CleanData {
		defer func() {
			StopAll() // the servers read the data
			r.logf("data: removing %s (-clean-data)", r.data.Dir)
			_ = os.RemoveAll(r.data.Dir)
		}()
	}
	gen := "reused from cache"
	if !r.data.Reused {
		gen = "built in " + r.data.Took.Round(time.Second).String()
	}
	rep.Machine = append(rep.Machine,
		[2]string{"data", fmt.Sprintf("table big: %d rows, Parquet %s (zstd), written by connectors/extract; %d extracts on the main server; %s (%s)",
			r.data.Rows, mb(r.data.BigBytes), r.data.Sources(), gen, r.data.Dir)})

	if r.in, err = OpenInProc(ctx, r.data.BigParquet); err != nil {
		return fmt.Errorf("in-process DuckDB: %w", err)
	}
	defer r.in.Close()
	rep.Machine = append(rep.Machine, [2]string{"DuckDB (in-process baseline)", r.in.Version(ctx) + " via duckdb-go, in-memory, view big over the same Parquet file"})

	t0 := time.Now()
	r.main, err = StartServer(ctx, "agnes-many", ServerOptions{Bin: cfg.ServerBin, DataDir: r.data.ManyDir,
		LogPath: filepath.Join(cfg.OutDir, "logs", "agnes-many.log")})
	if err != nil {
		return err
	}
	startup := time.Since(t0)
	defer func() { r.cleanup(r.main) }()
	r.a = NewAgnes(r.main.URL, r.main.Token)
	rep.Machine = append(rep.Machine, [2]string{"main server", fmt.Sprintf("bin/agnes-server serve, pid %d, %d extracts, start-up (incl. rebuild) to healthy %s, log %s",
		r.main.Pid, r.data.Sources(), startup.Round(time.Millisecond), r.main.LogPath)})
	rep.Machine = append(rep.Machine, [2]string{"transport of C–F", transportName(cfg.Connect) + " (A and B measure both HTTP/1.1 and h2c)"})
	if err := r.sanity(ctx); err != nil {
		return err
	}
	if base, err := r.main.RSS(); err == nil {
		rep.Machine = append(rep.Machine, [2]string{"main server idle RSS", mb(base)})
	}

	if cfg.want("A") || cfg.want("B") || cfg.want("G") {
		if r.plain, err = StartPlain(ctx, cfg.Exe, r.data.BigParquet, filepath.Join(cfg.OutDir, "logs", "plain-http.log")); err != nil {
			return fmt.Errorf("plain server: %w", err)
		}
	}

	type step struct {
		names []string
		fn    func(context.Context) error
	}
	steps := []step{
		{[]string{"A", "G"}, r.aggregate},
		{[]string{"B"}, r.selectOne},
		{[]string{"D"}, r.attachCount},
		{[]string{"C"}, r.bigScan},
		{[]string{"K"}, r.unary},
		{[]string{"E"}, r.cancels},
		{[]string{"F"}, r.rebuilds},
	}
	for _, s := range steps {
		if !slices.ContainsFunc(s.names, cfg.want) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !r.main.Alive() {
			return fmt.Errorf("the server exited; last lines of %s:\n%s", r.main.LogPath, r.main.Tail(20))
		}
		r.settle()
		if err := r.scenario(ctx, s.fn, s.names...); err != nil {
			return err
		}
	}
	seen := map[string]map[string]string{}
	for _, a := range append(r.retired, r.a) {
		for k, m := range a.Encodings() {
			if seen[k] == nil {
				seen[k] = map[string]string{}
			}
			for kind, enc := range m {
				seen[k][kind] = enc
			}
		}
	}
	var encs []string
	for _, k := range slices.Sorted(maps.Keys(seen)) {
		var kinds []string
		for _, kind := range slices.Sorted(maps.Keys(seen[k])) {
			kinds = append(kinds, kind+" "+seen[k][kind])
		}
		encs = append(encs, k+": "+strings.Join(kinds, ", "))
	}
	if len(encs) > 0 {
		rep.note("Response encodings the Connect clients received (client: call kind encoding): %s. The SDK advertises gzip; the server offers it on every service but Query and Sync (Arrow batches and Parquet chunks are already compact), so SDK users get those uncompressed.", strings.Join(encs, "; "))
	}
	return nil
}

// restartMain replaces the main server by a freshly started one (same
// DATA_DIR, fresh state, log agnes-many-<tag>.log).
func (r *run) restartMain(ctx context.Context, tag string) error {
	r.cleanup(r.main)
	s, err := StartServer(ctx, "agnes-many", ServerOptions{Bin: r.cfg.ServerBin, DataDir: r.data.ManyDir,
		LogPath: filepath.Join(r.cfg.OutDir, "logs", "agnes-many-"+tag+".log")})
	if err != nil {
		return fmt.Errorf("restart the main server: %w", err)
	}
	enc := r.a
	r.main, r.a = s, NewAgnes(s.URL, s.Token)
	r.retired = append(r.retired, enc)
	return nil
}

// cleanup stops a server and, unless -keep, removes its state.
func (r *run) cleanup(s *Server) {
	_ = s.Stop()
	if !r.cfg.Keep {
		_ = s.CleanState()
	}
}

// settle waits until the main server's CPU is quiet, so one scenario's
// leftovers do not land in the next.
func (r *run) settle() {
	if _, ok := waitCPUQuiet(r.main.Pid, 300*time.Millisecond, 1, 20*time.Second); !ok {
		r.logf("note: server CPU not quiet after 20 s, going on")
	}
}

// sanity checks that the server serves the data the benchmark expects.
func (r *run) sanity(ctx context.Context) error {
	res, err := r.a.H1.Query.Query(ctx, queryReq(`SELECT count(*) AS n FROM big`))
	if err != nil {
		return fmt.Errorf("sanity query on the server: %w", err)
	}
	if n := int64(res.GetRows()[0].GetValues()[0].GetNumberValue()); n != r.data.Rows {
		return fmt.Errorf("sanity: the server counts %d rows in big, want %d", n, r.data.Rows)
	}
	if len(r.data.SmallTables) > 0 {
		if _, err := r.a.H1.Query.Query(ctx, queryReq(`SELECT count(*) FROM `+r.data.SmallTables[len(r.data.SmallTables)-1])); err != nil {
			return fmt.Errorf("sanity: a small table is not queryable: %w", err)
		}
	}
	return nil
}

func expectRows(want int, n int, err error) error {
	if err == nil && n != want {
		err = fmt.Errorf("got %d rows, want %d", n, want)
	}
	return err
}

var errNoPlain = errors.New("plain server not running")
