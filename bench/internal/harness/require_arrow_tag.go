//go:build !duckdb_arrow

package harness

// The in-process baseline reads Arrow through duckdb-go's Arrow interface,
// which exists only with the duckdb_arrow build tag. Without it the build
// stops here with an error naming the tag.
var _ = build_with_tags_duckdb_arrow
