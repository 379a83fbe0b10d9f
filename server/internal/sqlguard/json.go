package sqlguard

import (
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

// A small JSON decoder for json_serialize_sql's output. Compared with
// encoding/json into any it keeps object members in document order (so the
// walk, and therefore the reported rejection, is deterministic, and a tree the
// guards rewrite encodes back as DuckDB wrote it), keeps numbers as their text,
// and interns the parse tree's recurring keys and enum values; it is several
// times faster on the hot path.
//
// Values are object, []any, string, number, bool or nil.

type object []member

// number is a JSON number as written.
type number string

type member struct {
	key   string
	value any
}

func (o object) get(key string) any {
	for i := range o {
		if o[i].key == key {
			return o[i].value
		}
	}
	return nil
}

// str returns the string member key, or "" if it is absent or not a string.
func (o object) str(key string) string {
	s, _ := o.get(key).(string)
	return s
}

// maxDepth matches encoding/json's nesting limit.
const maxDepth = 10000

var (
	errSyntax   = errors.New("invalid JSON")
	errTooDeep  = errors.New("JSON nested too deeply")
	errTrailing = errors.New("data after JSON value")
)

func decodeJSON(data []byte) (any, error) {
	d := decoder{data: data}
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return nil, errTrailing
	}
	return v, nil
}

type decoder struct {
	data  []byte
	pos   int
	depth int
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value() (any, error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return nil, errSyntax
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		s, err := d.string()
		return s, err
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		start := d.pos
		if err := d.number(); err != nil {
			return nil, err
		}
		return number(d.data[start:d.pos]), nil
	default:
		return nil, errSyntax
	}
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > maxDepth {
		return errTooDeep
	}
	d.pos++ // the opening bracket
	return nil
}

func (d *decoder) object() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	obj := make(object, 0, 8)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return obj, nil
	}
	for {
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, errSyntax
		}
		key, err := d.string()
		if err != nil {
			return nil, err
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, errSyntax
		}
		d.pos++
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		obj = append(obj, member{key: key, value: v})
		if done, err := d.next('}'); err != nil || done {
			d.depth--
			return obj, err
		}
	}
}

func (d *decoder) array() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	arr := []any{}
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return arr, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		if done, err := d.next(']'); err != nil || done {
			d.depth--
			return arr, err
		}
	}
}

// next consumes the separator after a member or element: a comma (more to
// come) or the closing bracket.
func (d *decoder) next(closing byte) (done bool, err error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return false, errSyntax
	}
	switch d.data[d.pos] {
	case ',':
		d.pos++
		return false, nil
	case closing:
		d.pos++
		return true, nil
	default:
		return false, errSyntax
	}
}

func (d *decoder) literal(word string) error {
	if len(d.data)-d.pos < len(word) || string(d.data[d.pos:d.pos+len(word)]) != word {
		return errSyntax
	}
	d.pos += len(word)
	return nil
}

// number moves past a number.
func (d *decoder) number() error {
	start := d.pos
	for d.pos < len(d.data) {
		switch c := d.data[d.pos]; {
		case '0' <= c && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			d.pos++
		default:
			return d.checkNumber(start)
		}
	}
	return d.checkNumber(start)
}

func (d *decoder) checkNumber(start int) error {
	if d.pos == start || d.data[d.pos-1] == '-' {
		return errSyntax
	}
	return nil
}

func (d *decoder) string() (string, error) {
	d.pos++ // opening quote
	start := d.pos
	for d.pos < len(d.data) {
		switch c := d.data[d.pos]; {
		case c == '"':
			raw := d.data[start:d.pos]
			d.pos++
			if s, ok := interned[string(raw)]; ok { // no allocation
				return s, nil
			}
			return string(raw), nil
		case c == '\\':
			return d.escapedString(start)
		case c < 0x20:
			return "", errSyntax
		default:
			d.pos++
		}
	}
	return "", errSyntax
}

// escapedString decodes a string containing escapes; d.pos is at the first
// backslash.
func (d *decoder) escapedString(start int) (string, error) {
	buf := append([]byte(nil), d.data[start:d.pos]...)
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			return string(buf), nil
		case c < 0x20:
			return "", errSyntax
		case c != '\\':
			buf = append(buf, c)
			d.pos++
			continue
		}
		if d.pos+1 >= len(d.data) {
			return "", errSyntax
		}
		esc := d.data[d.pos+1]
		d.pos += 2
		switch esc {
		case '"', '\\', '/':
			buf = append(buf, esc)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", errSyntax
			}
			if utf16.IsSurrogate(r) {
				r = d.lowSurrogate(r)
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", errSyntax
		}
	}
	return "", errSyntax
}

// lowSurrogate combines high with a following \uXXXX low surrogate; like
// encoding/json, anything else yields U+FFFD and is decoded on its own.
func (d *decoder) lowSurrogate(high rune) rune {
	if d.pos+1 < len(d.data) && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
		save := d.pos
		d.pos += 2
		if low, ok := d.hex4(); ok {
			if r := utf16.DecodeRune(high, low); r != utf8.RuneError {
				return r
			}
		}
		d.pos = save
	}
	return utf8.RuneError
}

func (d *decoder) hex4() (rune, bool) {
	if len(d.data)-d.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.data[d.pos : d.pos+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.pos += 4
	return r, true
}

// interned holds the keys and enum values that recur in every parse tree.
var interned = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		"", "type", "class", "alias", "query_location", "children", "function_name",
		"schema", "catalog", "filter", "order_bys", "orders", "distinct", "is_operator",
		"export_state", "column_names", "value", "id", "type_info", "is_null", "left",
		"right", "modifiers", "cte_map", "map", "select_list", "from_table", "where_clause",
		"group_expressions", "group_sets", "aggregate_handling", "having", "sample", "qualify",
		"table_name", "schema_name", "catalog_name", "column_name_alias", "at_clause",
		"condition", "join_type", "ref_type", "using_columns", "delim_flipped",
		"duplicate_eliminated_columns", "expression", "null_order", "child", "cast_type",
		"try_cast", "limit", "offset", "node", "named_param_map", "statements", "error",
		"subquery", "subquery_type", "relation_name", "exclude_list", "replace_list",
		"columns", "expr", "qualified_exclude_list", "rename_list", "function",
		"with_ordinality", "key", "query", "materialized", "key_targets", "aliases",
		"FUNCTION", "COLUMN_REF", "CONSTANT", "VALUE_CONSTANT", "COMPARISON", "CONJUNCTION",
		"STAR", "CAST", "OPERATOR_CAST", "SELECT_NODE", "BASE_TABLE", "JOIN", "EMPTY",
		"ORDER_MODIFIER", "ORDER_DEFAULT", "ASCENDING", "DESCENDING", "LIMIT_MODIFIER",
		"STANDARD_HANDLING", "INNER", "LEFT", "REGULAR", "CROSS", "NULLS_LAST", "NULLS_FIRST", "INTEGER", "VARCHAR", "BIGINT", "DOUBLE",
		"COMPARE_EQUAL", "CONJUNCTION_AND", "CONJUNCTION_OR", "main",
	} {
		m[s] = s
	}
	return m
}()
