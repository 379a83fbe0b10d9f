package soak

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Scenario is what one scenario found: its targets (PASS/FAIL), the
// figures behind them, and how the server was run.
type Scenario struct {
	ID      string   `json:"id"`
	Title   string   `json:"title"`
	Command string   `json:"command,omitempty"` // the server's command line
	Config  string   `json:"config,omitempty"`  // its config.yaml
	Targets []Target `json:"targets"`
	Tables  []Table  `json:"tables,omitempty"`
	Notes   []string `json:"notes,omitempty"`
	Error   string   `json:"error,omitempty"` // the scenario could not run to its end
	Took    string   `json:"took"`
}

// Target is one property the scenario checks.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Pass bool   `json:"pass"`
	// Reported is a target measured but not asserted in this run (the p99
	// targets of the short run): it never fails the run.
	Reported bool `json:"reported,omitempty"`
}

// Table is a table of figures.
type Table struct {
	Title  string     `json:"title"`
	Header []string   `json:"header"`
	Rows   [][]string `json:"rows"`
}

func (s *Scenario) target(name, want, got string, pass bool) {
	s.Targets = append(s.Targets, Target{Name: name, Want: want, Got: got, Pass: pass})
}

// report records a target that this run only reports (never fails on).
func (s *Scenario) report(name, want, got string, pass bool) {
	s.Targets = append(s.Targets, Target{Name: name, Want: want, Got: got, Pass: pass, Reported: true})
}

func (s *Scenario) note(format string, args ...any) {
	s.Notes = append(s.Notes, fmt.Sprintf(format, args...))
}

func (s *Scenario) table(title string, header ...string) *Table {
	s.Tables = append(s.Tables, Table{Title: title, Header: header})
	return &s.Tables[len(s.Tables)-1]
}

func (t *Table) row(cells ...string) { t.Rows = append(t.Rows, cells) }

// Failed lists the scenario's failures: asserted targets that did not
// pass, and an error that stopped it.
func (s *Scenario) Failed() []string {
	var out []string
	for _, t := range s.Targets {
		if !t.Pass && !t.Reported {
			out = append(out, fmt.Sprintf("%s: want %s, got %s", t.Name, t.Want, t.Got))
		}
	}
	if s.Error != "" {
		out = append(out, "could not run: "+s.Error)
	}
	return out
}

// Report is the whole run.
type Report struct {
	Command   string      `json:"command"`
	Short     bool        `json:"short"`
	Machine   [][2]string `json:"machine"`
	Started   time.Time   `json:"started"`
	Took      string      `json:"took"`
	Scenarios []*Scenario `json:"scenarios"`
}

// Failures counts the scenarios with a failure.
func (r *Report) Failures() int {
	n := 0
	for _, s := range r.Scenarios {
		if len(s.Failed()) > 0 {
			n++
		}
	}
	return n
}

func result(t Target) string {
	switch {
	case t.Pass && t.Reported:
		return "PASS (reported)"
	case t.Pass:
		return "PASS"
	case t.Reported:
		return "FAIL (reported, not asserted)"
	}
	return "FAIL"
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	b.WriteString("# Agnes soak-and-fault report\n\n")
	fmt.Fprintf(&b, "- **command:** `%s`\n", r.Command)
	if r.Short {
		b.WriteString("- **sizes:** short (the `make test` variant: small sizes, timing targets reported, not asserted)\n")
	}
	for _, kv := range r.Machine {
		fmt.Fprintf(&b, "- **%s:** %s\n", kv[0], kv[1])
	}
	fmt.Fprintf(&b, "- **started:** %s, **run time:** %s\n", r.Started.UTC().Format(time.RFC3339), r.Took)
	b.WriteString("\n## Targets\n\n| Scenario | Target | Want | Got | Result |\n|---|---|---|---|---|\n")
	for _, s := range r.Scenarios {
		for _, t := range s.Targets {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", s.ID, cell(t.Name), cell(t.Want), cell(t.Got), result(t))
		}
		if s.Error != "" {
			fmt.Fprintf(&b, "| %s | the scenario ran to its end | — | %s | ERROR |\n", s.ID, cell(s.Error))
		}
	}
	for _, s := range r.Scenarios {
		fmt.Fprintf(&b, "\n## %s — %s\n\n", s.ID, s.Title)
		fmt.Fprintf(&b, "Took %s.", s.Took)
		if s.Command != "" {
			fmt.Fprintf(&b, " Server: `%s` with this config.yaml (nothing from the environment):\n\n```yaml\n%s```\n", s.Command, s.Config)
		}
		b.WriteString("\n")
		for _, t := range s.Tables {
			fmt.Fprintf(&b, "\n**%s**\n\n| %s |\n|%s\n", t.Title, strings.Join(t.Header, " | "), strings.Repeat("---|", len(t.Header)))
			for _, row := range t.Rows {
				cells := make([]string, len(row))
				for i, c := range row {
					cells[i] = cell(c)
				}
				fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
			}
		}
		if len(s.Notes) > 0 {
			b.WriteString("\n")
			for _, n := range s.Notes {
				fmt.Fprintf(&b, "- %s\n", n)
			}
		}
	}
	return b.String()
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

// JSON is the report as JSON.
func (r *Report) JSON() []byte {
	b, _ := json.MarshalIndent(r, "", "  ")
	return b
}

// machine describes where the run happened.
func machine(bin string) [][2]string {
	out := [][2]string{{"go", runtime.Version()}, {"cpus", fmt.Sprint(runtime.NumCPU())}}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		if line, _, ok := strings.Cut(string(raw), "\n"); ok {
			out = append(out, [2]string{"memory", strings.Join(strings.Fields(strings.TrimPrefix(line, "MemTotal:")), " ")})
		}
	}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(raw)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				out = append(out, [2]string{"cpu", strings.TrimSpace(v)})
				break
			}
		}
	}
	if v, err := exec.Command(bin, "--version").Output(); err == nil {
		out = append(out, [2]string{"server", strings.TrimSpace(string(v))})
	}
	return out
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// quantile is the nearest-rank q-quantile of a sample (0 < q ≤ 1).
func quantile(s []time.Duration, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	i := int(q*float64(len(c))+0.999999) - 1
	return c[min(max(i, 0), len(c)-1)]
}
