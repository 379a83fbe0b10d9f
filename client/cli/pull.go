package cli

import (
	"cmp"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/agnesdata/agnes/client/pull"
)

// DefaultPullDir is where `agnes pull` mirrors tables unless --dir or AGNES_PULL_DIR says otherwise.
const DefaultPullDir = "agnes-data"

func (a *app) pullCmd() *cobra.Command {
	var dir string
	var quiet bool
	var parallel int
	cmd := &cobra.Command{
		Use:     "pull",
		Aliases: []string{"sync"},
		Short:   "Mirror the tables you may see into a local folder and DuckDB file",
		Long: `Download every table you are granted into DIR/parquet (only what changed since the
last pull, verified against the server's content hashes), remove tables you no longer
see, and refresh DIR/agnes.duckdb with one view per table:

  duckdb agnes-data/agnes.duckdb -c 'SELECT count(*) FROM orders'

An interrupted pull resumes where it stopped. DIR defaults to ./` + DefaultPullDir + ` (env AGNES_PULL_DIR).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if dir == "" {
				dir = cmp.Or(os.Getenv("AGNES_PULL_DIR"), DefaultPullDir)
			}
			opts := pull.Options{Dir: dir, Parallel: parallel}
			bar := &progressBar{out: a.err}
			if !quiet && !a.jsonOut {
				if f, ok := a.err.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					opts.Progress = bar.update
				}
			}
			res, err := pull.Run(cmd.Context(), c, opts)
			bar.finish()
			if err != nil {
				return interrupted(cmd.Context(), err)
			}
			if a.jsonOut {
				return a.printer().value(res)
			}
			if !quiet {
				changed := "nothing changed"
				if len(res.Downloaded) > 0 {
					changed = fmt.Sprintf("downloaded %s (%s)", strings.Join(res.Downloaded, ", "), humanBytes(res.Bytes))
				}
				fmt.Fprintf(a.out, "%d tables, %s", res.Tables, changed)
				if len(res.Removed) > 0 {
					fmt.Fprintf(a.out, ", removed %s", strings.Join(res.Removed, ", "))
				}
				fmt.Fprintf(a.out, " in %.1f s\n%s\n", float64(res.DurationMS)/1000, res.Database)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "local folder (default ./"+DefaultPullDir+", env AGNES_PULL_DIR)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing on success (for hooks)")
	cmd.Flags().IntVar(&parallel, "parallel", 4, "concurrent downloads")
	return cmd
}

// progressBar draws one line on a terminal, at most ten times a second.
type progressBar struct {
	out  interface{ Write([]byte) (int, error) }
	mu   sync.Mutex
	last time.Time
	drew bool
}

func (p *progressBar) update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.last, p.drew = time.Now(), true
	const width = 30
	filled := 0
	if total > 0 {
		filled = int(float64(width) * float64(done) / float64(total))
	}
	fmt.Fprintf(p.out, "\r[%s%s] %s / %s ", strings.Repeat("#", min(filled, width)), strings.Repeat(".", width-min(filled, width)),
		humanBytes(done), humanBytes(total))
}

func (p *progressBar) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drew {
		fmt.Fprint(p.out, "\r\033[K")
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
