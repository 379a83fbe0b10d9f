// Package engine runs read-only SQL over the master analytics database, one
// generation at a time.
//
// A generation is one master (analytics/gen/<n>.duckdb, built by the
// orchestrator) opened read-only once, into one pool of connections, with
// every extract and remote source it needs attached once: ATTACH is
// instance-wide in DuckDB, so no request ever opens or attaches anything.
// Before a generation serves its first query the instance is hardened:
// file access limited to the extracts' Parquet, no extension installing or
// loading, configuration locked. These settings hold even if the SQL
// sandbox in front of the engine has a hole.
//
// Queries acquire the newest generation and hold a reference until they
// end. Load swaps in a new generation while queries run; the old one closes,
// and its file is deleted, when its last query finishes.
//
// Results are streamed: DuckDB computes a result as the engine reads it,
// one chunk (up to 2048 rows) at a time, each converted to an Arrow record
// batch and handed to the sink (for Arrow sinks, converted on two goroutines
// while the next chunks are fetched, and handed on in order). DuckDB runs
// ahead of the reader by at most a 32 MB buffer, so memory does not grow
// with the size of the result and the first batch leaves once that buffer
// is full, not once the whole result is computed. Row, byte and time
// limits stop a query early; cancelling the context interrupts it inside
// DuckDB. How values are written for the API (JSON, protobuf) is the query
// service's business: the engine hands out Arrow and DuckDB's type names.
//
// The engine talks to DuckDB through its C API (duckdb-go-bindings): each
// generation owns its instance and a small pool of connections, because
// duckdb-go materializes a whole result before its first row. See
// docs/adr/0007-query-engine-generations.md.
//
// The package needs the duckdb_arrow build tag (the project builds with it
// everywhere).
package engine
