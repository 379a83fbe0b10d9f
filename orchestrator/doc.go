// Package orchestrator builds the master analytics database: one view per
// table over every source's extract.duckdb, written as a new generation and
// swapped in atomically.
//
// Layout under $DATA_DIR:
//
//	extracts/<source>/extract.duckdb + data/   written by connectors (package extract)
//	analytics/gen/<n>.duckdb                   generation n of the master; the query engine opens this
//	analytics/server.duckdb                    hard link to the newest generation, for tools
//
// Why a path per generation: inside one process DuckDB keeps one database
// instance per path, so opening server.duckdb again while the previous
// generation is still open would hand back the old instance with the old
// views. A unique path per generation never collides, and the engine deletes
// a generation's file once its last query has finished.
//
// Each master also holds _agnes_sources, the list of what must be attached
// for its views to resolve (each extract, each remote source), so the query
// engine attaches exactly that without rescanning extracts/. Problems with
// one source (a broken or locked extract, a remote that cannot be attached,
// a view name another source already claimed) are reported in the Result
// and never stop the other sources. See
// docs/adr/0006-extract-contract-and-rebuild.md.
package orchestrator
