// Package extract is the extract.duckdb contract between connectors and the
// orchestrator: its types, a writer connectors use to produce it, and the
// validator that both sides trust.
//
// Every source writes one directory, $DATA_DIR/extracts/<source>/:
//
//	extract.duckdb   _meta (one row per table), one view per row,
//	                 _parts (the files of partitioned tables, with hashes),
//	                 optionally _remote_attach (remote sources to ATTACH)
//	data/<t>.parquet or data/<t>/*.parquet   the local tables' data
//
// The package sits at the bottom of the dependency graph: connectors write
// the contract and the orchestrator reads it, so it imports neither.
//
// Files are never rewritten in place. Parquet is written to a hidden temp
// name in data/ and renamed over the old file; extract.duckdb is written to a
// temp file and renamed too, so a reader sees either the old or the new
// version, never half of one. The MD5 of each Parquet file is computed once,
// when it is written, and stored in _meta (column md5) so that nobody has to
// re-read the data to learn its content hash. A partitioned table lists its
// parts in _parts (table_name, part, md5, size_bytes, rows), so a client can
// download only the parts that changed; its _meta.md5 is PartsMD5 of them.
// Both tables are optional for readers: extracts written before they
// existed still read and validate. So is _meta.watermark: where an
// incremental table's next extract starts, committed by the same rename of
// extract.duckdb as the rows and hashes of the data it describes.
//
// Views reference Parquet by absolute path: DuckDB resolves relative paths
// against the process working directory, not against the database file.
// A moved data directory therefore needs a full Commit of each source (see
// docs/adr/0006-extract-contract-and-rebuild.md); Validate reports the views
// that no longer resolve.
package extract
