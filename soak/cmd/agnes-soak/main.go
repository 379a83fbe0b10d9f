// Command agnes-soak starts the real agnes-server and proves, under hostile
// load and crashes, the defences of issue #11; it writes soak/out/report.md
// (and report.json; each scenario's config, data and server logs are under
// soak/out/<scenario>/). Run it from the repository root after make build
// (make soak does both):
//
//	go run -tags duckdb_arrow ./soak/cmd/agnes-soak [-only h1,crash] [-short]
//
// Exit status: 0 when every target passed, 1 when the harness could not
// run, 2 when some target failed (the report says FAIL or ERROR).
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

	"github.com/agnesdata/agnes/soak/internal/soak"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		cfg   soak.Config
		only  string
		short bool
	)
	flag.StringVar(&cfg.ServerBin, "server", "bin/agnes-server", "agnes-server binary (make build)")
	flag.StringVar(&cfg.OutDir, "out", "soak/out", "output directory: report.md, report.json, one folder per scenario")
	flag.StringVar(&only, "only", "", "comma-separated scenarios to run (default all: "+strings.Join(soak.Scenarios, ",")+")")
	flag.BoolVar(&short, "short", false, "the small sizes of the make test variant (timing targets reported, not asserted)")
	flag.Parse()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "agnes-soak:", err); return 1 }

	cfg.Sizes, cfg.Short = soak.Full, short
	if short {
		cfg.Sizes = soak.Short
	}
	if only != "" {
		cfg.Only = map[string]bool{}
		for _, id := range strings.Split(only, ",") {
			cfg.Only[strings.ToLower(strings.TrimSpace(id))] = true
		}
	}
	var err error
	for _, p := range []*string{&cfg.ServerBin, &cfg.OutDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return fail(err)
		}
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return fail(err)
	}
	cfg.Command = "agnes-soak " + strings.Join(os.Args[1:], " ")
	start := time.Now()
	cfg.Logf = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	// The first Ctrl-C or SIGTERM stops the run (servers are stopped, the
	// partial report is written); the servers die with the harness anyway.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer soak.StopAll()

	rep, runErr := soak.Run(ctx, cfg)
	if rep == nil {
		return fail(runErr)
	}
	md := rep.Markdown()
	if runErr != nil {
		md += "\n**The run stopped early:** " + runErr.Error() + "\n"
	}
	for name, data := range map[string][]byte{"report.md": []byte(md), "report.json": rep.JSON()} {
		if err := writeFile(filepath.Join(cfg.OutDir, name), data); err != nil {
			return fail(err)
		}
	}
	fmt.Println(md)
	fmt.Fprintf(os.Stderr, "report written to %s\n", filepath.Join(cfg.OutDir, "report.md"))
	switch {
	case runErr != nil:
		return fail(runErr)
	case rep.Failures() > 0:
		fmt.Fprintf(os.Stderr, "agnes-soak: %d scenario(s) failed a target (FAIL or ERROR in the report)\n", rep.Failures())
		return 2
	}
	return 0
}

// writeFile writes to a temp name and renames, so a reader never sees half a report.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
