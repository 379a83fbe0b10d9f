package soak

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSoakShort is make soak's shortened run inside make test: every
// scenario against the real server binary with the Short sizes, asserting
// the same properties (the p99 targets are reported, not asserted). It
// builds the server from this checkout (or uses AGNES_SOAK_SERVER).
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts, attacks and kills server processes")
	}
	bin := os.Getenv("AGNES_SOAK_SERVER")
	if bin == "" {
		bin = buildServer(t)
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, id := range Scenarios {
		t.Run(id, func(t *testing.T) {
			rep, err := Run(ctx, Config{ServerBin: bin, OutDir: out, Sizes: Short, Short: true, Only: map[string]bool{id: true},
				Command: "go test ./soak/...", Logf: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			for _, sc := range rep.Scenarios {
				if failed := sc.Failed(); len(failed) > 0 {
					t.Errorf("%s:\n  %s\n\nreport:\n%s\nserver logs in %s", sc.ID, strings.Join(failed, "\n  "), rep.Markdown(),
						filepath.Join(out, sc.ID))
				}
			}
		})
	}
}

// buildServer builds agnes-server from the module this test is in.
func buildServer(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "agnes-server")
	cmd := exec.Command("go", "build", "-tags", "duckdb_arrow", "-o", bin, "./server/cmd/agnes-server")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build agnes-server: %v\n%s", err, out)
	}
	return bin
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// The report's verdicts: asserted failures fail, reported ones do not.
func TestScenarioFailed(t *testing.T) {
	sc := &Scenario{}
	sc.target("a", "1", "1", true)
	sc.report("b", "≤ 50 ms", "80 ms", false)
	if f := sc.Failed(); len(f) != 0 {
		t.Fatalf("failures %v, want none (b is only reported)", f)
	}
	sc.target("c", "1", "2", false)
	sc.Error = "the server did not start"
	if f := sc.Failed(); len(f) != 2 || !strings.HasPrefix(f[0], "c:") {
		t.Fatalf("failures %v, want c and the error", f)
	}
	if md := (&Report{Scenarios: []*Scenario{sc}}).Markdown(); !strings.Contains(md, "| FAIL |") || !strings.Contains(md, "FAIL (reported, not asserted)") {
		t.Fatalf("markdown lacks the verdicts:\n%s", md)
	}
}
