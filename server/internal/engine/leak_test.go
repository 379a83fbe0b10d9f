//go:build debug_bindings

package engine

import (
	"fmt"
	"os"
	"testing"

	bindings "github.com/duckdb/duckdb-go-bindings"
)

// With the debug_bindings tag the bindings count the C objects they hand
// out. After every test has closed its engines, none of the engine's may
// be left (duckdb-go's instance cache, used by the fixtures, lives for the
// process).
//
//	go test -tags duckdb_arrow,debug_bindings ./server/internal/engine/
func TestMain(m *testing.M) {
	code := m.Run()
	for _, k := range []string{"db", "conn", "config", "preparedStmt", "extractedStmts", "pendingRes", "res",
		"chunk", "logicalType", "arrowOptions", "errorData"} {
		if n, ok := bindings.GetAllocationCount(k); ok && n != 0 {
			fmt.Fprintf(os.Stderr, "leaked %d %s (%s)\n", n, k, bindings.GetAllocationCounts())
			code = 1
		}
	}
	os.Exit(code)
}
