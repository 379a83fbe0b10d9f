package sqlguard

import "strings"

// The walker visits every object and array of the parse tree, so nothing
// nested (subqueries in any clause, CTE bodies, lambdas, window specs, PIVOT
// sources, AT clauses, ...) escapes. Objects are recognised by their "class"
// (expressions) or "type" (query nodes, table references, modifiers, type
// info); a kind it does not know is rejected.

// Expression classes json_serialize_sql emits for SELECT statements, apart
// from FUNCTION, WINDOW and PARAMETER, which get their own handling.
var expressionClasses = map[string]bool{
	"BETWEEN":              true,
	"CASE":                 true,
	"CAST":                 true,
	"COLLATE":              true,
	"COLUMN_REF":           true,
	"COMPARISON":           true,
	"CONJUNCTION":          true,
	"CONSTANT":             true,
	"LAMBDA":               true,
	"OPERATOR":             true,
	"POSITIONAL_REFERENCE": true,
	"STAR":                 true,
	"SUBQUERY":             true,
}

// Typed nodes with nothing to check beyond their children. BASE_TABLE,
// TABLE_FUNCTION and the query nodes are handled separately; SHOW_REF
// (DESCRIBE, SUMMARIZE, SHOW) and every unknown type are rejected.
var plainTypes = map[string]bool{
	// table references
	"JOIN":            true,
	"SUBQUERY":        true,
	"EXPRESSION_LIST": true, // VALUES
	"EMPTY":           true, // no FROM clause
	"PIVOT":           true,
	// result modifiers and orderings
	"ORDER_MODIFIER":         true,
	"LIMIT_MODIFIER":         true,
	"LIMIT_PERCENT_MODIFIER": true,
	"DISTINCT_MODIFIER":      true,
	"ORDER_DEFAULT":          true,
	"ASCENDING":              true,
	"DESCENDING":             true,
}

// Table functions that only turn values into rows. unnest's argument is an
// expression, walked like any other, so it cannot name a table or file.
var allowedTableFunctions = map[string]bool{
	"range":           true,
	"generate_series": true,
	"unnest":          true,
}

// scope is a linked list of the CTE names visible at a point of the tree,
// folded with foldASCII.
type scope struct {
	name   string
	parent *scope
}

func (s *scope) has(name string) bool {
	for ; s != nil; s = s.parent {
		if s.name == name {
			return true
		}
	}
	return false
}

type walker struct {
	cat    Catalog
	tables map[string]struct{}
	limits Limits
	// guards are the builder calls to rewrite with a runtime size check.
	guards []object
}

func (w *walker) value(v any, sc *scope) error {
	switch x := v.(type) {
	case object:
		return w.object(x, sc)
	case []any:
		for _, e := range x {
			if err := w.value(e, sc); err != nil {
				return err
			}
		}
	}
	return nil
}

// fields walks every member of m except the one named skip.
func (w *walker) fields(m object, sc *scope, skip string) error {
	for _, f := range m {
		if f.key == skip {
			continue
		}
		if err := w.value(f.value, sc); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) object(m object, sc *scope) error {
	if class, ok := m.get("class").(string); ok {
		switch {
		case class == "FUNCTION" || class == "WINDOW":
			if err := checkFunction(m); err != nil {
				return err
			}
			if err := w.checkAllocation(m); err != nil {
				return err
			}
		case class == "PARAMETER":
			return reject(Unsupported, "query parameters ($1, ?, $name) are not supported; write the values into the query")
		case !expressionClasses[class]:
			return reject(Unsupported, "unsupported expression (%s)", class)
		}
		return w.fields(m, sc, "")
	}
	typ, ok := m.get("type").(string)
	if !ok {
		// Plain containers: CTE entries, pivot entries, sample options, ...
		return w.fields(m, sc, "")
	}
	switch {
	case typ == "SELECT_NODE" || typ == "SET_OPERATION_NODE" || typ == "RECURSIVE_CTE_NODE":
		return w.queryNode(typ, m, sc)
	case typ == "BASE_TABLE":
		if err := w.baseTable(m, sc); err != nil {
			return err
		}
	case typ == "TABLE_FUNCTION":
		return w.tableFunction(m, sc)
	case typ == "SHOW_REF":
		return reject(ForbiddenReference, "DESCRIBE, SUMMARIZE and SHOW are not allowed; query the view instead")
	case typ == "UNBOUND_TYPE_INFO" || typ == "USER_TYPE_INFO":
		// A named type, e.g. "x::shop.main.secret_enum" would read another
		// database's catalog.
		if !localName(m.str("catalog"), m.str("schema")) {
			return reject(ForbiddenReference, "types from other databases or schemas are not allowed (%s)", qualified(m, "catalog", "schema", "name", "user_type_name"))
		}
	case strings.HasSuffix(typ, "_TYPE_INFO"):
		// Type parameters (DECIMAL width, STRUCT fields, ...): data only.
	case !plainTypes[typ]:
		return reject(Unsupported, "unsupported query construct (%s)", typ)
	}
	return w.fields(m, sc, "")
}

// queryNode walks a SELECT, set operation or recursive CTE with the CTE
// scoping DuckDB applies (verified on 1.5.6): a CTE is visible to the node's
// body, to nested subqueries and to the CTEs defined after it in the same
// WITH, but not to itself or earlier ones; there the name means a table. A
// recursive CTE sees itself only in its recursive (right) branch. Names match
// ASCII-case-insensitively and only when unqualified.
func (w *walker) queryNode(typ string, m object, sc *scope) error {
	inner := sc
	if cm := m.get("cte_map"); cm != nil {
		ctes, _ := cm.(object)
		entries, ok := ctes.get("map").([]any)
		if !ok {
			return reject(Unsupported, "unsupported WITH clause")
		}
		for _, e := range entries {
			entry, _ := e.(object)
			name, ok := entry.get("key").(string)
			if !ok {
				return reject(Unsupported, "unsupported WITH clause")
			}
			if err := w.fields(entry, inner, "key"); err != nil {
				return err
			}
			inner = &scope{name: foldASCII(name), parent: inner}
		}
	}
	recursive := inner
	if typ == "RECURSIVE_CTE_NODE" {
		name, ok := m.get("cte_name").(string)
		if !ok {
			return reject(Unsupported, "unsupported recursive CTE")
		}
		recursive = &scope{name: foldASCII(name), parent: inner}
	}
	for _, f := range m {
		var err error
		switch f.key {
		case "cte_map":
		case "right":
			err = w.value(f.value, recursive)
		default:
			err = w.value(f.value, inner)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) baseTable(m object, sc *scope) error {
	name, ok := m.get("table_name").(string)
	if !ok {
		return reject(Unsupported, "unsupported table reference")
	}
	catalog, schema := m.str("catalog_name"), m.str("schema_name")
	if catalog == "" && schema == "" && sc.has(foldASCII(name)) {
		return nil // a CTE
	}
	if !localName(catalog, schema) {
		return reject(ForbiddenReference, "references to other databases or schemas are not allowed (%s)", qualified(m, "catalog_name", "schema_name", "table_name"))
	}
	if view, ok := w.cat.View(name); ok {
		w.tables[view] = struct{}{}
		return nil
	}
	if looksLikePath(name) {
		return reject(ForbiddenReference, "reading files is not allowed ('%s'); query a registered view instead", name)
	}
	e := reject(UnknownTable, "unknown table '%s'", name)
	e.Name = name
	return e
}

func (w *walker) tableFunction(m object, sc *scope) error {
	fn, ok := m.get("function").(object)
	if !ok || fn.str("class") != "FUNCTION" {
		return reject(Unsupported, "unsupported table function call")
	}
	name := foldASCII(fn.str("function_name"))
	if !allowedTableFunctions[name] {
		return reject(ForbiddenTableFunction, "table function %s is not allowed in queries (only range, generate_series and unnest are)", name)
	}
	if !localName(fn.str("catalog"), fn.str("schema")) {
		return reject(ForbiddenReference, "functions may not be qualified with another database or schema (%s)", qualified(fn, "catalog", "schema", "function_name"))
	}
	// The arguments, and then the alias, sample, ... of the reference itself.
	if err := w.fields(fn, sc, ""); err != nil {
		return err
	}
	return w.fields(m, sc, "function")
}

func checkFunction(m object) error {
	name := foldASCII(m.str("function_name"))
	if !functionAllowed(name) {
		return reject(ForbiddenFunction, "function %s is not allowed in queries", name)
	}
	// The parser reads col.f() as f in schema col, indistinguishable from a
	// macro of an attached database, so only main may qualify a call.
	if !localName(m.str("catalog"), m.str("schema")) {
		return reject(ForbiddenReference, "functions may not be qualified with another database or schema (%s); to call a function on a column write %s(column)", qualified(m, "catalog", "schema", "function_name"), name)
	}
	return nil
}

// localName reports whether a catalog/schema qualifier stays in the default
// database's main schema. The parser itself qualifies some built-ins with
// "main" (struct_pack for {...}, date_part for EXTRACT, ...).
func localName(catalog, schema string) bool {
	return catalog == "" && (schema == "" || foldASCII(schema) == "main")
}

// looksLikePath reports whether an unresolved table name is a replacement
// scan of a file or URL ('x.parquet', '../x.csv', '/etc/passwd',
// 'https://...'), to give a clearer message than "unknown table".
func looksLikePath(name string) bool {
	return strings.ContainsAny(name, `./\:~*?`)
}

// qualified renders a possibly qualified name for messages.
func qualified(m object, keys ...string) string {
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if s := m.str(k); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ".")
}

// foldASCII lower-cases ASCII letters only, as DuckDB does when it matches
// identifiers: Unicode folding would make "K" (Kelvin sign) match a CTE named
// "k" where DuckDB looks for a table instead.
func foldASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
