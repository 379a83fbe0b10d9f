package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Result of a comparison against its target.
const (
	Pass  = "PASS"
	Fail  = "FAIL"
	Info  = "info"  // context, no target
	Error = "ERROR" // the scenario could not be measured
)

// Row is one line of the results table.
type Row struct {
	Scenario string `json:"scenario"`
	Metric   string `json:"metric"`
	Agnes    string `json:"agnes"`
	Baseline string `json:"baseline"`
	Ratio    string `json:"ratio"`
	Target   string `json:"target"`
	Result   string `json:"result"`
}

// Timing is the summary of one measured variant, for the details table.
type Timing struct {
	Scenario string  `json:"scenario"`
	Variant  string  `json:"variant"`
	N        int     `json:"n"`
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	Minms    float64 `json:"min_ms"`
	Extra    string  `json:"extra,omitempty"`
}

// Report is everything the run found.
type Report struct {
	Machine [][2]string `json:"machine"`
	Rows    []Row       `json:"rows"`
	Timings []Timing    `json:"timings"`
	Notes   []string    `json:"notes"`
	Started time.Time   `json:"started"`
	Took    string      `json:"took"`
}

func (r *Report) add(row Row) { r.Rows = append(r.Rows, row) }

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Report) timing(scenario, variant string, s Sample, extra string) {
	f := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	r.Timings = append(r.Timings, Timing{Scenario: scenario, Variant: variant, N: len(s),
		P50ms: f(s.Median()), P90ms: f(s.Quantile(0.9)), Minms: f(s.Min()), Extra: extra})
}

// errorRow records a scenario that could not be measured.
func (r *Report) errorRow(scenario string, err error) {
	r.add(Row{Scenario: scenario, Metric: "could not be measured", Agnes: "—", Baseline: "—", Ratio: "—", Target: "—", Result: Error})
	r.note("%s: %v", scenario, err)
}

// Errors counts rows that could not be measured.
func (r *Report) Errors() int {
	n := 0
	for _, row := range r.Rows {
		if row.Result == Error {
			n++
		}
	}
	return n
}

func passIf(ok bool) string {
	if ok {
		return Pass
	}
	return Fail
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	b.WriteString("# Agnes benchmark report\n\n")
	for _, kv := range r.Machine {
		fmt.Fprintf(&b, "- **%s:** %s\n", kv[0], kv[1])
	}
	fmt.Fprintf(&b, "- **run time:** %s\n", r.Took)
	b.WriteString("\n## Results\n\n")
	b.WriteString("| Scenario | Metric | Agnes median | Baseline median | Ratio / diff | Target | Result |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n",
			cell(row.Scenario), cell(row.Metric), cell(row.Agnes), cell(row.Baseline), cell(row.Ratio), cell(row.Target), cell(row.Result))
	}
	if len(r.Timings) > 0 {
		b.WriteString("\n## Timings of every variant\n\n")
		b.WriteString("| Scenario | Variant | n | p50 | p90 | min | Notes |\n|---|---|---|---|---|---|---|\n")
		for _, t := range r.Timings {
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s |\n", cell(t.Scenario), cell(t.Variant), t.N,
				msf(t.P50ms), msf(t.P90ms), msf(t.Minms), cell(t.Extra))
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(n, "\n", " "))
		}
	}
	return b.String()
}

func msf(f float64) string { return ms(time.Duration(f * float64(time.Millisecond))) }

func cell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ") }

// JSON renders the report as JSON.
func (r *Report) JSON() []byte {
	b, _ := json.MarshalIndent(r, "", "  ")
	return append(b, '\n')
}

// machineInfo describes where and what was measured.
func machineInfo(serverBin string) [][2]string {
	out := [][2]string{
		{"date", time.Now().UTC().Format("2006-01-02 15:04:05 UTC")},
		{"git commit", gitCommit()},
		{"nproc", nproc()},
		{"GOMAXPROCS (harness)", fmt.Sprint(runtime.GOMAXPROCS(0))},
		{"CPU", cpuModel()},
		{"memory", memTotal()},
		{"Go", runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH},
		{"kernel", cmdOut("uname", "-r")},
	}
	if v := cmdOut(serverBin, "--version"); v != "" {
		out = append(out, [2]string{"agnes-server", v})
	}
	return out
}

func cmdOut(name string, args ...string) string {
	b, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func gitCommit() string {
	c := cmdOut("git", "rev-parse", "--short=12", "HEAD")
	if c == "" {
		return "unknown"
	}
	if cmdOut("git", "status", "--porcelain", "--untracked-files=no") != "" {
		c += " (working tree has uncommitted changes)"
	}
	return c
}

func nproc() string {
	if v := cmdOut("nproc"); v != "" {
		return v
	}
	return fmt.Sprint(runtime.NumCPU())
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotal() string {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			var kb int64
			_, _ = fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return "unknown"
}
