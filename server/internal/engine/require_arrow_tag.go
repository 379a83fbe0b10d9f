//go:build !duckdb_arrow

package engine

// The engine converts DuckDB's chunks to Arrow with the C API's Arrow
// functions, which duckdb-go-bindings (and duckdb-go) compile only with the
// duckdb_arrow build tag. Without it the build stops here with an error
// naming the tag rather than somewhere inside the bindings.
var _ = build_with_tags_duckdb_arrow
