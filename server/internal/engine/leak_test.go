//go:build debug_bindings

package engine

import (
	"os"
	"testing"

	bindings "github.com/duckdb/duckdb-go-bindings"
)

func TestMain(m *testing.M) {
	code := m.Run()
	println("ALLOC COUNTS:", bindings.GetAllocationCounts())
	os.Exit(code)
}
