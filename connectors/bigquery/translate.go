package bigquery

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/extract"
)

// DialectError is a DuckDB SELECT that BigQuery would run differently (or
// that references something other than this source's remote tables), so
// it is refused rather than pushed down. Its message is safe to show.
type DialectError struct {
	Construct string // what was found, e.g. "function date_trunc", "ORDER BY a"
	Reason    string // why it is refused
}

func (e *DialectError) Error() string {
	return fmt.Sprintf("this query cannot be pushed down to BigQuery: %s: %s", e.Construct, e.Reason)
}

// Unwrap makes a DialectError an input error for callers that map those
// to 400.
func (e *DialectError) Unwrap() error { return &connectors.InputError{Msg: e.Error()} }

// Translate turns a DuckDB SELECT over master views into BigQuery SQL:
// every table reference must be a key of tables (a view name, lower case,
// as referenced: "orders" or "main.orders") and is replaced by the quoted
// BigQuery id its value names ("project.dataset.table"), keeping the view
// name as the alias; "quoted" identifiers become `quoted`, and string
// literals are re-escaped for BigQuery. The rest of the text is passed on
// as written, so anything BigQuery cannot parse fails there, with
// BigQuery's message.
//
// What both engines accept but evaluate differently is refused with a
// *DialectError. The check is an allowlist, deliberately conservative:
//
//   - expressions: column references, constants (numbers, strings,
//     booleans, NULL), comparisons, AND/OR/NOT, IS [NOT] NULL, [NOT] IN,
//     BETWEEN, CASE, COALESCE, subqueries, plain * and t.*; CAST only to
//     DATE or BOOLEAN (DuckDB's INTEGER is 32-bit, DECIMAL is (18,3),
//     TIMESTAMP is naive, and double→integer rounds half to even);
//   - functions: count, sum, min, max, avg, lower, upper, length, abs,
//     round, nullif, ifnull, + - * / || and [NOT] LIKE; window functions
//     row_number, rank, dense_rank, lag, lead and the aggregates above;
//     no FILTER, IGNORE NULLS or ordered aggregates;
//   - ORDER BY: an ascending key needs an explicit NULLS FIRST/LAST
//     (DuckDB puts NULLs last, BigQuery first);
//   - FROM: tables of the map, subqueries, CTEs (not recursive), INNER,
//     LEFT, RIGHT, FULL and CROSS joins; no NATURAL/ASOF/POSITIONAL/LATERAL
//     /SEMI/ANTI joins, table functions, VALUES, PIVOT, SAMPLE, UNION BY
//     NAME, DISTINCT ON, LIMIT %, list subscripts (1-based in DuckDB,
//     0-based in BigQuery), EXCLUDE/REPLACE/COLUMNS stars, lambdas,
//     parameters.
//
// Known limits the caller must weigh: arithmetic on DATE/TIMESTAMP values
// is not detected (parsing does not know types: date - date is an integer
// in DuckDB and an INTERVAL in BigQuery), and unaliased expression columns
// are named by BigQuery (f0_), not as DuckDB would name them.
//
// db is any DuckDB handle; it only parses (json_serialize_sql).
func Translate(ctx context.Context, db extract.Conn, query string, tables map[string]string) (string, error) {
	var raw string
	if err := db.QueryRowContext(ctx, "SELECT json_serialize_sql(?::VARCHAR)::VARCHAR", query).Scan(&raw); err != nil {
		return "", fmt.Errorf("translate: %w", err)
	}
	var parsed struct {
		Error        bool   `json:"error"`
		ErrorMessage string `json:"error_message"`
		Statements   []any  `json:"statements"`
	}
	if err := json.Unmarshal([]byte(raw), &parsed); err != nil {
		return "", fmt.Errorf("translate: %w", err)
	}
	switch {
	case parsed.Error:
		return "", &connectors.InputError{Msg: "the query does not parse as one SELECT: " + parsed.ErrorMessage}
	case len(parsed.Statements) != 1:
		return "", &connectors.InputError{Msg: fmt.Sprintf("expected one SELECT, got %d statements", len(parsed.Statements))}
	}
	w := &walker{ctes: map[string]bool{}}
	collectCTEs(parsed.Statements[0], w.ctes)
	w.walk(parsed.Statements[0])
	if w.err != nil {
		return "", w.err
	}
	refs := map[int]string{}
	for _, ref := range w.refs {
		id, ok := lookup(tables, ref.names)
		name := strings.Join(ref.names, ".")
		switch {
		case w.ctes[strings.ToLower(name)] && len(ref.names) == 1:
			if ok {
				return "", &DialectError{Construct: "WITH " + name, Reason: "the CTE has the name of a remote table; rename it"}
			}
			continue
		case !ok:
			return "", &DialectError{Construct: "table " + name,
				Reason: "not a remote BigQuery table of this source (queries mixing local and remote tables are refused)"}
		case strings.ContainsAny(id, "`\\\n"):
			return "", fmt.Errorf("translate: BigQuery id %q cannot be quoted", id)
		}
		refs[ref.at] = "`" + id + "`"
		if ref.alias == "" {
			refs[ref.at] += " AS " + quoteBQ(ref.names[len(ref.names)-1])
		}
	}
	return rewrite(query, refs)
}

func lookup(tables map[string]string, names []string) (string, bool) {
	id, ok := tables[strings.ToLower(strings.Join(names, "."))]
	return id, ok
}

type tableRef struct {
	at    int
	names []string
	alias string
}

type walker struct {
	ctes map[string]bool
	refs []tableRef
	err  error
}

func (w *walker) refuse(construct, reason string) {
	if w.err == nil {
		w.err = &DialectError{Construct: construct, Reason: reason}
	}
}

func collectCTEs(v any, into map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		if m, ok := x["cte_map"].(map[string]any); ok {
			for _, e := range asList(m["map"]) {
				if k, ok := asMap(e)["key"].(string); ok {
					into[strings.ToLower(k)] = true
				}
			}
		}
		for _, c := range x {
			collectCTEs(c, into)
		}
	case []any:
		for _, c := range x {
			collectCTEs(c, into)
		}
	}
}

var (
	allowedFunctions = setOf("count", "count_star", "sum", "min", "max", "avg", "lower", "upper", "length", "abs",
		"round", "nullif", "ifnull", "+", "-", "*", "/", "||", "~~", "!~~")
	allowedWindows = setOf("row_number", "rank", "dense_rank", "lag", "lead", "count", "count_star", "sum", "min",
		"max", "avg")
	allowedOperators = setOf("OPERATOR_NOT", "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL", "COMPARE_IN", "COMPARE_NOT_IN",
		"OPERATOR_COALESCE")
	allowedConstants = setOf("INTEGER", "BIGINT", "HUGEINT", "DECIMAL", "DOUBLE", "VARCHAR", "BOOLEAN", "NULL")
	allowedCasts     = setOf("DATE", "BOOLEAN")
	allowedClasses   = setOf("COLUMN_REF", "COMPARISON", "CONJUNCTION", "CASE", "BETWEEN", "SUBQUERY")
)

func setOf(items ...string) map[string]bool {
	m := map[string]bool{}
	for _, it := range items {
		m[it] = true
	}
	return m
}

func (w *walker) walk(v any) {
	switch x := v.(type) {
	case []any:
		for _, c := range x {
			w.walk(c)
		}
		return
	case map[string]any:
		if class, ok := x["class"].(string); ok {
			w.expression(class, x)
		} else if typ, ok := x["type"].(string); ok {
			w.node(typ, x)
		}
		for _, c := range x {
			w.walk(c)
		}
	}
}

func (w *walker) expression(class string, x map[string]any) {
	typ, _ := x["type"].(string)
	name, _ := x["function_name"].(string)
	switch class {
	case "FUNCTION":
		switch {
		case str(x["schema"]) != "" || str(x["catalog"]) != "":
			w.refuse("function "+name, "qualified function names are DuckDB's")
		case !allowedFunctions[name]:
			w.refuse("function "+name, "not on the list of functions DuckDB and BigQuery evaluate alike")
		case x["filter"] != nil:
			w.refuse("FILTER on "+name, "BigQuery has no aggregate FILTER")
		case len(asList(asMap(x["order_bys"])["orders"])) > 0:
			w.refuse("ORDER BY inside "+name, "ordered aggregates are not pushed down")
		}
	case "WINDOW":
		switch {
		case !allowedWindows[name]:
			w.refuse("window function "+name, "not on the list of window functions DuckDB and BigQuery evaluate alike")
		case x["ignore_nulls"] == true, x["filter_expr"] != nil, len(asList(x["arg_orders"])) > 0,
			str(x["exclude_clause"]) != "" && str(x["exclude_clause"]) != "NO_OTHER":
			w.refuse("window function "+name, "IGNORE NULLS, FILTER, EXCLUDE and ordered arguments are not pushed down")
		default:
			w.orders("window ORDER BY", asList(x["orders"]))
		}
	case "OPERATOR":
		if !allowedOperators[typ] {
			reason := "not pushed down"
			if typ == "ARRAY_EXTRACT" || typ == "ARRAY_SLICE" {
				reason = "DuckDB counts list positions from 1, BigQuery from 0"
			}
			w.refuse("operator "+typ, reason)
		}
	case "CAST":
		target := str(asMap(x["cast_type"])["id"])
		switch {
		case x["try_cast"] == true:
			w.refuse("TRY_CAST", "BigQuery spells it SAFE_CAST")
		case !allowedCasts[target]:
			w.refuse("CAST to "+target, "the type differs between DuckDB and BigQuery (only DATE and BOOLEAN are pushed down)")
		}
	case "CONSTANT":
		if t := str(asMap(asMap(x["value"])["type"])["id"]); !allowedConstants[t] {
			w.refuse("constant of type "+t, "not pushed down")
		}
	case "STAR":
		if x["columns"] == true || x["expr"] != nil || len(asList(x["exclude_list"])) > 0 || len(asList(x["replace_list"])) > 0 ||
			len(asList(x["rename_list"])) > 0 || len(asList(x["qualified_exclude_list"])) > 0 {
			w.refuse("* with EXCLUDE/REPLACE/RENAME/COLUMNS", "DuckDB-only")
		}
	default:
		if !allowedClasses[class] {
			w.refuse("expression "+strings.ToLower(class), "not pushed down")
		}
	}
}

func (w *walker) node(typ string, x map[string]any) {
	switch typ {
	case "SELECT_NODE":
		if x["sample"] != nil {
			w.refuse("USING SAMPLE", "sampling differs")
		}
	case "SET_OPERATION_NODE":
		if t := str(x["setop_type"]); t != "UNION" && t != "EXCEPT" && t != "INTERSECT" {
			w.refuse(strings.ReplaceAll(t, "_", " "), "DuckDB-only")
		}
	case "RECURSIVE_CTE_NODE":
		w.refuse("WITH RECURSIVE", "not pushed down")
	case "ORDER_MODIFIER":
		w.orders("ORDER BY", asList(x["orders"]))
	case "LIMIT_PERCENT_MODIFIER":
		w.refuse("LIMIT %", "DuckDB-only")
	case "DISTINCT_MODIFIER":
		if len(asList(x["distinct_on_targets"])) > 0 {
			w.refuse("DISTINCT ON", "DuckDB-only")
		}
	case "BASE_TABLE":
		var names []string
		for _, k := range []string{"catalog_name", "schema_name", "table_name"} {
			if s := str(x[k]); s != "" {
				names = append(names, s)
			}
		}
		at, ok := x["query_location"].(float64)
		switch {
		case x["sample"] != nil || x["at_clause"] != nil:
			w.refuse("table "+strings.Join(names, "."), "SAMPLE and AT clauses are not pushed down")
		case len(asList(x["column_name_alias"])) > 0:
			w.refuse("table alias with column names", "not pushed down")
		case !ok || at < 0 || at > 1<<40:
			w.refuse("table "+strings.Join(names, "."), "its position in the query is unknown")
		default:
			w.refs = append(w.refs, tableRef{at: int(at), names: names, alias: str(x["alias"])})
		}
	case "JOIN":
		if rt := str(x["ref_type"]); rt != "REGULAR" && rt != "CROSS" {
			w.refuse(rt+" JOIN", "not pushed down")
		}
		if jt := str(x["join_type"]); !slices.Contains([]string{"INNER", "LEFT", "RIGHT", "OUTER"}, jt) {
			w.refuse(jt+" JOIN", "not pushed down")
		}
	case "TABLE_FUNCTION", "EXPRESSION_LIST", "PIVOT", "SHOW_REF", "COLUMN_DATA", "DELIM_GET":
		w.refuse(strings.ToLower(strings.ReplaceAll(typ, "_", " ")), "not pushed down")
	}
}

// orders refuses ascending sort keys without an explicit NULLS FIRST/LAST.
func (w *walker) orders(what string, orders []any) {
	for _, o := range orders {
		m := asMap(o)
		if str(m["null_order"]) == "ORDER_DEFAULT" && str(m["type"]) != "DESCENDING" {
			w.refuse(what+" without NULLS FIRST/LAST", "ascending, DuckDB sorts NULLs last and BigQuery first; say which")
			return
		}
	}
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
func asList(v any) []any         { l, _ := v.([]any); return l }
func str(v any) string           { s, _ := v.(string); return s }

// quoteBQ quotes a BigQuery identifier.
func quoteBQ(s string) string {
	return "`" + strings.NewReplacer(`\`, `\\`, "`", "\\`").Replace(s) + "`"
}

// quoteBQString writes a BigQuery string literal.
func quoteBQString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\r", `\r`).Replace(s) + "'"
}

// rewrite re-lexes DuckDB SQL into BigQuery's: table references at the
// given byte offsets are replaced, "identifiers" become `identifiers`,
// 'strings' get BigQuery escapes, comments stay.
func rewrite(q string, refs map[int]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(q); {
		if repl, ok := refs[i]; ok {
			n := qualifiedNameLen(q[i:])
			if n == 0 {
				return "", fmt.Errorf("translate: no table name at offset %d", i)
			}
			b.WriteString(repl)
			i += n
			continue
		}
		c := q[i]
		switch {
		case strings.HasPrefix(q[i:], "--"):
			end := strings.IndexByte(q[i:], '\n')
			if end < 0 {
				end = len(q) - i
			}
			b.WriteString(q[i : i+end])
			i += end
		case strings.HasPrefix(q[i:], "/*"):
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				return "", &connectors.InputError{Msg: "unclosed comment"}
			}
			b.WriteString(q[i : i+end+4])
			i += end + 4
		case c == '\'':
			s, n := quoted(q[i:], '\'')
			b.WriteString(quoteBQString(s))
			i += n
		case c == '"':
			s, n := quoted(q[i:], '"')
			b.WriteString(quoteBQ(s))
			i += n
		case c == '$' && i+1 < len(q) && (q[i+1] == '$' || identStartByte(q[i+1])):
			return "", &DialectError{Construct: "$ in the query", Reason: "dollar-quoted strings and parameters are DuckDB's"}
		case (c == 'e' || c == 'E') && i+1 < len(q) && q[i+1] == '\'' && (i == 0 || !identByte(q[i-1])):
			return "", &DialectError{Construct: "E'...' string", Reason: "escape strings are DuckDB's"}
		case identStartByte(c):
			j := i
			for j < len(q) && identByte(q[j]) {
				j++
			}
			b.WriteString(q[i:j]) // keep words whole so E'…' checks see word starts
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// quoted reads a quoted token (doubled quotes escape) and returns its
// content and length; an unclosed one runs to the end (DuckDB parsed it, so
// this does not happen).
func quoted(q string, quote byte) (string, int) {
	var b strings.Builder
	for i := 1; i < len(q); i++ {
		if q[i] == quote {
			if i+1 < len(q) && q[i+1] == quote {
				b.WriteByte(quote)
				i++
				continue
			}
			return b.String(), i + 1
		}
		b.WriteByte(q[i])
	}
	return b.String(), len(q)
}

// qualifiedNameLen is the length of a.b."c" at the start of q.
func qualifiedNameLen(q string) int {
	i := 0
	for {
		switch {
		case i < len(q) && q[i] == '"':
			_, n := quoted(q[i:], '"')
			i += n
		case i < len(q) && identStartByte(q[i]):
			for i < len(q) && identByte(q[i]) {
				i++
			}
		default:
			return 0
		}
		// whitespace around dots is legal but unusual; names end at anything else
		if i+1 < len(q) && q[i] == '.' && (q[i+1] == '"' || identStartByte(q[i+1])) {
			i++
			continue
		}
		return i
	}
}

func identStartByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func identByte(c byte) bool { return identStartByte(c) || c >= '0' && c <= '9' || c == '$' }
