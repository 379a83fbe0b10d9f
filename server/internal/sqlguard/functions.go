package sqlguard

import (
	_ "embed"
	"strings"
)

// builtinFunctions lists the scalar, aggregate and macro functions of the
// DuckDB build in go.mod (system.main in duckdb_functions()). A function
// outside it (a macro someone created, an extension function, a newer
// DuckDB's addition) is rejected until reviewed. TestBuiltinSnapshot fails
// when the build and the list drift apart; regenerate with
// go test ./server/internal/sqlguard -run TestBuiltinSnapshot -update
// and review the diff against the deny rules below.
//
//go:embed builtin_functions.txt
var builtinFunctions string

var builtins = nameSet(builtinFunctions)

// parserFunctions are functions the binder implements itself, so
// duckdb_functions() does not list them.
var parserFunctions = map[string]bool{
	"unnest": true, // unnest(list) in a select list
	"unlist": true, // alias of unnest
}

// Denied families, matched by prefix. Most have no scalar member today (they
// are table functions, which are allowlisted separately); the prefixes keep a
// future scalar member out too. See docs/adr/0005-sql-sandbox.md.
var deniedPrefixes = []string{
	"read_",             // files
	"parquet_",          // file metadata
	"duckdb_",           // catalog, settings, secrets, logs
	"pragma_",           // catalog, settings
	"json_serialize_",   // parses or plans other SQL (json_serialize_plan binds it)
	"json_deserialize_", // turns JSON back into SQL
	"json_execute_",     // runs serialized SQL
	"__internal_",       // storage internals, no analytical use
}

// Denied built-ins that are not covered by a prefix.
var deniedNames = map[string]bool{
	// Run SQL or read tables/files named by a string, out of the checker's sight.
	"query":       true,
	"query_table": true,
	"glob":        true,
	"sniff_csv":   true,
	// Resolve catalog objects from a string at runtime.
	"make_type":      true, // make_type('other_db.main.some_enum')
	"in_search_path": true,
	"nextval":        true, // also advances a sequence
	"currval":        true,
	// Environment, configuration and session state.
	"getenv":          true,
	"current_setting": true,
	"getvariable":     true,
	"which_secret":    true,
	// Engine and session introspection: no analytical value, fingerprints
	// the engine.
	"version":                true,
	"current_database":       true,
	"current_catalog":        true,
	"current_schema":         true,
	"current_schemas":        true,
	"current_query":          true,
	"current_query_id":       true,
	"current_connection_id":  true,
	"current_transaction_id": true,
	"txid_current":           true,
	"current_user":           true,
	"current_role":           true,
	"session_user":           true,
	"user":                   true,
	"get_block_size":         true, // macro over pragma_database_size()
	// Side effects on the engine or the session shared through the pool.
	"setseed":          true,
	"write_log":        true,
	"sleep_ms":         true,
	"checkpoint":       true,
	"force_checkpoint": true,
}

// functionAllowed reports whether a scalar, aggregate or window function may
// be called; name is already folded.
func functionAllowed(name string) bool {
	if parserFunctions[name] {
		return true
	}
	if _, ok := builtins[name]; !ok || deniedNames[name] {
		return false
	}
	for _, p := range deniedPrefixes {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	return true
}

// nameSet parses a list of names, one a line; lines starting with # are
// comments.
func nameSet(list string) map[string]struct{} {
	set := map[string]struct{}{}
	for line := range strings.Lines(list) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			set[line] = struct{}{}
		}
	}
	return set
}
