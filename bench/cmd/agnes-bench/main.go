// Command agnes-bench measures Agnes against in-process DuckDB and a plain
// DuckDB-over-HTTP server (A–G), its distribution paths — manifest,
// download next to http.FileServer, agnes pull (H–J) — and a burst of Jira
// webhooks (K), and writes bench/out/report.md. Run it from the repository root after make build
// (make bench does both):
//
//	go run -tags duckdb_arrow ./bench/cmd/agnes-bench [-only A,B] [-quick] ...
//
// Exit status: 0 when every selected scenario was measured (whether its
// target passed or not: the report says FAIL), 1 when the harness could not
// run, 2 when some scenario could not be measured (the report says ERROR).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/agnesdata/agnes/bench/internal/harness"
)

func main() {
	var (
		cfg     harness.Config
		only    string
		quick   bool
		plain   string
		parquet string
		files   string
		fdir    string
		export  string
	)
	flag.StringVar(&cfg.ServerBin, "server", "bin/agnes-server", "agnes-server binary (make build)")
	flag.StringVar(&cfg.AgnesBin, "agnes", "bin/agnes", "agnes CLI binary (make build), for J")
	flag.StringVar(&cfg.OutDir, "out", "bench/out", "output directory: report.md, report.json, logs/")
	flag.StringVar(&cfg.DataRoot, "data", "", "data cache directory (default <out>/data); kept between runs")
	flag.Int64Var(&cfg.Rows, "rows", 10_000_000, "rows of table big")
	flag.IntVar(&cfg.Small, "small-sources", 49, "small sources besides the big one (the attach-count scenario)")
	flag.BoolVar(&cfg.RebuildData, "rebuild-data", false, "regenerate the data even if the cached copy matches")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the servers' state/ and analytics/ folders after the run (the generated data is kept unless -clean-data)")
	flag.BoolVar(&cfg.CleanData, "clean-data", false, "delete the generated data set at the end (next run rebuilds it)")
	flag.StringVar(&only, "only", "", "comma-separated scenarios to run, e.g. A,B (default all: "+strings.Join(harness.Scenarios, ",")+")")
	flag.StringVar(&cfg.Connect, "connect", harness.HTTP1, "Connect transport of scenarios C–F: h1 (HTTP/1.1) or h2c (HTTP/2 cleartext); A and B measure both")
	flag.IntVar(&cfg.ItersAgg, "iters-agg", 30, "A/G: timed rounds of the aggregate")
	flag.IntVar(&cfg.WarmAgg, "warm-agg", 3, "A/G: warm-up rounds")
	flag.IntVar(&cfg.ItersSelect1, "iters-select1", 2000, "B: timed rounds of SELECT 1")
	flag.IntVar(&cfg.WarmSelect1, "warm-select1", 200, "B: warm-up rounds")
	flag.IntVar(&cfg.ItersStream, "iters-stream", 5, "C and K: rounds of SELECT * FROM big and of the 1 M-row answer")
	flag.DurationVar(&cfg.StreamSlow, "stream-slow", 60*time.Second, "C: a variant whose first run takes longer than this runs only once (0: no limit)")
	flag.BoolVar(&cfg.FreshServer, "fresh-server", true, "C and K: restart the main server before each server run, so no run inherits another's memory")
	flag.BoolVar(&cfg.StreamGenerated, "stream-generated", true, "C: also stream Arrow through the generated client's QueryStream, every message its own allocation (context row)")
	flag.IntVar(&cfg.ItersSmall, "iters-small", 300, "D: timed rounds of the small query")
	flag.IntVar(&cfg.WarmSmall, "warm-small", 30, "D: warm-up rounds")
	flag.IntVar(&cfg.Cancels, "cancels", 50, "E: concurrent queries to cancel")
	flag.DurationVar(&cfg.CancelAfter, "cancel-after", 200*time.Millisecond, "E: cancel each query this long after it starts")
	flag.IntVar(&cfg.Rebuilds, "rebuilds", 10, "F: rebuilds")
	flag.IntVar(&cfg.Clients, "clients", 4, "F: concurrent querying clients")
	flag.IntVar(&cfg.ItersManifest, "iters-manifest", 200, "H: timed rounds of the manifest (REST and Connect each)")
	flag.IntVar(&cfg.WarmManifest, "warm-manifest", 20, "H: warm-up rounds")
	flag.IntVar(&cfg.ItersDownload, "iters-download", 30, "I: timed rounds of the 200 MB download (Agnes and http.FileServer each)")
	flag.IntVar(&cfg.WarmDownload, "warm-download", 3, "I: warm-up rounds")
	flag.IntVar(&cfg.Pulls, "pulls", 5, "J: rounds of change one table, rebuild, agnes pull")
	flag.IntVar(&cfg.ItersExport, "iters-export", 3, "M: rounds of the 1 M-row Keboola export and of DuckDB's COPY")
	flag.IntVar(&cfg.ItersRemote, "iters-remote", 200, "M: timed rounds of the remote BigQuery query")
	flag.IntVar(&cfg.WarmRemote, "warm-remote", 20, "M: warm-up rounds")
	flag.BoolVar(&quick, "quick", false, "few iterations everywhere (a smoke test of the harness, not a measurement)")
	flag.StringVar(&plain, "serve-plain", "", "internal: serve the plain DuckDB-over-HTTP baseline on this address")
	flag.StringVar(&parquet, "plain-parquet", "", "internal: the Parquet file of the plain server")
	flag.StringVar(&files, "serve-files", "", "internal: serve the http.FileServer baseline (I) on this address")
	flag.StringVar(&fdir, "files-dir", "", "internal: the directory of the file server")
	flag.StringVar(&export, "export-keboola", "", "internal: run scenario M's export once into this folder (the memory measurement)")
	flag.Parse()

	if export != "" {
		if err := harness.ExportKeboola(export); err != nil {
			fmt.Fprintln(os.Stderr, "export:", err)
			os.Exit(1)
		}
		return
	}

	if files != "" {
		if err := harness.ServeFiles(files, fdir); err != nil {
			fmt.Fprintln(os.Stderr, "file server:", err)
			os.Exit(1)
		}
		return
	}
	if plain != "" {
		if err := harness.ServePlain(plain, parquet); err != nil {
			fmt.Fprintln(os.Stderr, "plain server:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(run(cfg, only, quick))
}

func run(cfg harness.Config, only string, quick bool) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "agnes-bench:", err); return 1 }
	if quick {
		cfg.ItersAgg, cfg.WarmAgg = 5, 1
		cfg.ItersSelect1, cfg.WarmSelect1 = 200, 20
		cfg.ItersStream = 1
		cfg.ItersSmall, cfg.WarmSmall = 50, 5
		cfg.Rebuilds = 3
		cfg.ItersManifest, cfg.WarmManifest = 30, 3
		cfg.ItersDownload, cfg.WarmDownload = 3, 1
		cfg.Pulls = 2
		cfg.ItersExport = 1
		cfg.ItersRemote, cfg.WarmRemote = 30, 3
	}
	if cfg.Connect != harness.HTTP1 && cfg.Connect != harness.H2C {
		return fail(fmt.Errorf("-connect %q: want h1 or h2c", cfg.Connect))
	}
	if cfg.Rows < 1000 || cfg.Small < 0 || cfg.ItersAgg < 1 || cfg.ItersSelect1 < 1 || cfg.ItersStream < 1 ||
		cfg.ItersSmall < 1 || cfg.Cancels < 1 || cfg.Rebuilds < 1 || cfg.Clients < 1 ||
		cfg.ItersManifest < 1 || cfg.ItersDownload < 1 || cfg.Pulls < 1 || cfg.ItersExport < 1 || cfg.ItersRemote < 1 || cfg.WarmRemote < 0 || cfg.WarmManifest < 0 || cfg.WarmDownload < 0 {
		return fail(fmt.Errorf("-rows must be ≥ 1000 and iteration counts ≥ 1"))
	}
	if only != "" {
		cfg.Only = map[string]bool{}
		for _, s := range strings.Split(only, ",") {
			s = strings.ToUpper(strings.TrimSpace(s))
			if !containsStr(harness.Scenarios, s) {
				return fail(fmt.Errorf("-only: unknown scenario %q (have %s)", s, strings.Join(harness.Scenarios, ",")))
			}
			cfg.Only[s] = true
		}
	}
	var err error
	for _, p := range []*string{&cfg.ServerBin, &cfg.AgnesBin, &cfg.OutDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return fail(err)
		}
	}
	if cfg.DataRoot == "" {
		cfg.DataRoot = filepath.Join(cfg.OutDir, "data")
	}
	if cfg.DataRoot, err = filepath.Abs(cfg.DataRoot); err != nil {
		return fail(err)
	}
	if cfg.Exe, err = os.Executable(); err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return fail(err)
	}
	start := time.Now()
	cfg.Logf = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	// The first Ctrl-C or SIGTERM stops the run (children are stopped, the
	// partial report is still written); a second one kills the harness, and
	// the children die with it (Pdeathsig).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()
	defer harness.StopAll()

	rep, runErr := harness.Run(ctx, cfg)
	md := rep.Markdown()
	if runErr != nil {
		md += "\n**The run stopped early:** " + strings.ReplaceAll(runErr.Error(), "\n", " ") + "\n"
	}
	if err := os.WriteFile(filepath.Join(cfg.OutDir, "report.md"), []byte(md), 0o644); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.OutDir, "report.json"), rep.JSON(), 0o644); err != nil {
		return fail(err)
	}
	fmt.Println(md)
	fmt.Fprintf(os.Stderr, "report written to %s\n", filepath.Join(cfg.OutDir, "report.md"))
	switch {
	case runErr != nil:
		return fail(runErr)
	case rep.Errors() > 0:
		fmt.Fprintf(os.Stderr, "agnes-bench: %d scenario(s) could not be measured (ERROR in the report)\n", rep.Errors())
		return 2
	}
	return 0
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
