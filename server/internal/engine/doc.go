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
// Results are delivered in bounded batches, as Arrow record batches or as
// rows, under row, byte and time limits. Cancelling the context interrupts
// the query inside DuckDB. duckdb-go materializes a result before the first
// batch can be read, so the engine wraps every query in a LIMIT of the row
// cap plus one: DuckDB-side memory is bounded by the row limit, not by what
// the query could return. See docs/adr/0007-query-engine-generations.md.
//
// The package needs the duckdb_arrow build tag (the project builds with it
// everywhere).
package engine
