package sqlguard

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Builders are functions whose result size one of their arguments decides:
// list_resize([1], 1e8) asks for 800 MB, and DuckDB does not count such
// allocations against memory_limit (a plain DuckDB with memory_limit=1GB grew
// to 16.8 GB on list_resize(…, 2e8)). Each call is bounded by Limits.BuilderSize
// (elements of a list, characters of a string): a call whose size is a literal
// is checked here; any other call is rewritten so that DuckDB checks the size
// when the row is computed, before allocating (see guardCall). A builder's
// arguments may not contain another builder, which would multiply the bound.
//
// The bound is per call and row; DuckDB computes 2,048 rows at a time, so one
// chunk of a guarded call takes at most 2,048 × BuilderSize elements.
type builder struct {
	// size is the SQL of the result size over the packed arguments
	// (__agnes_p.a0, a1, ...), or "" for the list forms of range and
	// generate_series, which must have literal bounds.
	size string
	// literal computes the size when the arguments are literals (ok false
	// when some is not).
	literal func(args []any) (size float64, ok bool)
	unit    string
	// plain lists the arguments that must be literal scalars (a fill value:
	// a list or string value there would multiply the size).
	plain []int
}

var builders = map[string]builder{
	"list_resize":  {size: "__agnes_p.a1", literal: argNum(1), unit: "elements", plain: []int{2}},
	"array_resize": {size: "__agnes_p.a1", literal: argNum(1), unit: "elements", plain: []int{2}},
	"repeat":       {size: "len(__agnes_p.a0) * __agnes_p.a1", literal: repeatSize, unit: "elements or characters"},
	"lpad":         {size: "__agnes_p.a1", literal: argNum(1), unit: "characters"},
	"rpad":         {size: "__agnes_p.a1", literal: argNum(1), unit: "characters"},
	"bar":          {size: "coalesce(__agnes_p.a3, 80)", literal: barSize, unit: "characters"},
	// The list forms; the table functions (FROM range(...)) stream rows and are
	// not builders.
	"range":           {literal: rangeSize(false), unit: "elements"},
	"generate_series": {literal: rangeSize(true), unit: "elements"},
}

// isBuilder reports whether a FUNCTION node calls a builder.
func isBuilder(m object) bool {
	_, ok := builders[foldASCII(m.str("function_name"))]
	return ok && m.str("class") == "FUNCTION"
}

func children(m object) []any {
	c, _ := m.get("children").([]any)
	return c
}

// checkAllocation applies the builder and format rules to a function call.
func (w *walker) checkAllocation(m object) error {
	switch name := foldASCII(m.str("function_name")); {
	case name == "printf" || name == "format":
		return w.checkFormat(m)
	case isBuilder(m):
		guard, err := w.checkBuilder(m)
		if guard {
			w.guards = append(w.guards, m)
		}
		return err
	}
	return nil
}

// checkBuilder applies the builder rules to a call before its arguments are
// walked. It returns whether the call must be rewritten with a runtime guard.
func (w *walker) checkBuilder(m object) (guard bool, err error) {
	name := foldASCII(m.str("function_name"))
	b := builders[name]
	args := children(m)
	for _, a := range args {
		if containsBuilder(a) {
			return false, reject(ForbiddenFunction, "%s may not take the result of another list or string builder "+
				"(list_resize, repeat, lpad, rpad, range, generate_series, bar) as an argument", name)
		}
	}
	for _, i := range b.plain {
		if i < len(args) && !isScalarConstant(args[i]) {
			return false, reject(ForbiddenFunction, "%s: argument %d must be a constant scalar value", name, i+1)
		}
	}
	size, ok := b.literal(args)
	switch {
	case ok && size > float64(w.limits.BuilderSize):
		return false, reject(LimitExceeded, "%s would build %s %s, over the limit of %d %s per call (query.max_builder_size)",
			name, formatSize(size), b.unit, w.limits.BuilderSize, b.unit)
	case ok:
		return false, nil
	case b.size == "":
		return false, reject(LimitExceeded, "the list form of %s needs constant bounds (at most %d elements); "+
			"to generate rows from column values, use it as a table function: FROM t, %s(t.a, t.b) AS g(x)",
			name, w.limits.BuilderSize, name)
	}
	return true, nil
}

// formatRE finds the width and precision of printf ("%10.2f") and fmt ("{:>10}")
// specifications, and the dynamic ones ("%*d", "{:{}}").
var formatRE = regexp.MustCompile(`%[-+ #0]*(\*|\d+)?(\.(\*|\d+))?|\{[^{}]*(\{[^{}]*\})?[^{}]*\}`)

// checkFormat bounds printf and format: their format string must be a literal
// whose widths and precisions are within the builder limit.
func (w *walker) checkFormat(m object) error {
	name := foldASCII(m.str("function_name"))
	args := children(m)
	if len(args) == 0 {
		return nil
	}
	f, ok := constantString(args[0])
	if !ok {
		return reject(ForbiddenFunction, "%s: the format string must be a constant", name)
	}
	for _, spec := range formatRE.FindAllString(f, -1) {
		if strings.Contains(spec, "*") || strings.Count(spec, "{") > 1 {
			return reject(ForbiddenFunction, "%s: widths and precisions must be written in the format string, not passed as arguments", name)
		}
		for _, digits := range regexp.MustCompile(`\d+`).FindAllString(spec, -1) {
			if n, _ := strconv.ParseFloat(digits, 64); n > float64(w.limits.BuilderSize) {
				return reject(LimitExceeded, "%s: a width or precision of %s is over the limit of %d characters (query.max_builder_size)",
					name, digits, w.limits.BuilderSize)
			}
		}
	}
	return nil
}

func containsBuilder(v any) bool {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if containsBuilder(e) {
				return true
			}
		}
	case object:
		if x.str("class") == "FUNCTION" && isBuilder(x) {
			return true
		}
		for _, m := range x {
			if containsBuilder(m.value) {
				return true
			}
		}
	}
	return false
}

// constant returns a VALUE_CONSTANT node's type id and value.
func constant(v any) (typ string, value any, ok bool) {
	m, isObj := v.(object)
	if !isObj || m.str("type") != "VALUE_CONSTANT" {
		return "", nil, false
	}
	val, _ := m.get("value").(object)
	t, _ := val.get("type").(object)
	if val.get("is_null") == true {
		return t.str("id"), nil, true
	}
	return t.str("id"), val.get("value"), true
}

func isScalarConstant(v any) bool {
	typ, _, ok := constant(v)
	return ok && !strings.Contains(typ, "LIST") && !strings.Contains(typ, "STRUCT") && !strings.Contains(typ, "MAP") &&
		typ != "VARCHAR" && typ != "BLOB"
}

func constantString(v any) (string, bool) {
	typ, val, ok := constant(v)
	s, isStr := val.(string)
	return s, ok && typ == "VARCHAR" && isStr
}

// constantNumber reads a numeric literal, also negated (-5 parses as a constant).
func constantNumber(v any) (float64, bool) {
	_, val, ok := constant(v)
	n, isNum := val.(number)
	if !ok || !isNum {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	return f, err == nil
}

func argNum(i int) func([]any) (float64, bool) {
	return func(args []any) (float64, bool) {
		if i >= len(args) {
			return 0, false
		}
		return constantNumber(args[i])
	}
}

func repeatSize(args []any) (float64, bool) {
	if len(args) != 2 {
		return 0, false
	}
	n, ok := constantNumber(args[1])
	s, isStr := constantString(args[0])
	if !ok || !isStr {
		return 0, false
	}
	return float64(len([]rune(s))) * n, true
}

func barSize(args []any) (float64, bool) {
	if len(args) < 4 {
		return 80, true
	}
	return constantNumber(args[3])
}

// rangeSize counts the elements of range (stop excluded) or generate_series
// (stop included) with literal arguments: numbers, or dates/timestamps with
// an interval step.
func rangeSize(inclusive bool) func(args []any) (float64, bool) {
	return func(args []any) (float64, bool) { return countRange(args, inclusive) }
}

func countRange(args []any, inclusive bool) (float64, bool) {
	vals := make([]float64, len(args))
	for i, a := range args {
		v, ok := constantNumber(a)
		if !ok {
			if v, ok = constantInstant(a); !ok {
				if v, ok = constantInterval(a); !ok {
					return 0, false
				}
			}
		}
		vals[i] = v
	}
	start, stop, step := 0.0, 0.0, 1.0
	switch len(vals) {
	case 1:
		stop = vals[0]
	case 2:
		start, stop = vals[0], vals[1]
	case 3:
		start, stop, step = vals[0], vals[1], vals[2]
	default:
		return 0, false
	}
	if step == 0 {
		return 0, true // DuckDB refuses a zero step itself
	}
	n := (stop - start) / step
	switch {
	case n < 0:
		return 0, true
	case inclusive:
		return math.Floor(n) + 1, true
	}
	return math.Ceil(n), true
}

// constantInstant reads CAST('…' AS DATE|TIMESTAMP) as seconds since the epoch.
func constantInstant(v any) (float64, bool) {
	m, ok := v.(object)
	if !ok || m.str("class") != "CAST" {
		return 0, false
	}
	ct, _ := m.get("cast_type").(object)
	s, isStr := constantString(m.get("child"))
	if !isStr {
		return 0, false
	}
	for _, layout := range []string{time.DateOnly, "2006-01-02 15:04", time.DateTime, "2006-01-02T15:04:05"} {
		if strings.HasPrefix(ct.str("id"), "DATE") || strings.HasPrefix(ct.str("id"), "TIMESTAMP") {
			if t, err := time.Parse(layout, strings.TrimSpace(s)); err == nil {
				return float64(t.Unix()), true
			}
		}
	}
	return 0, false
}

var intervalUnits = map[string]float64{"to_microseconds": 1e-6, "to_milliseconds": 1e-3, "to_seconds": 1,
	"to_minutes": 60, "to_hours": 3600, "to_days": 86400, "to_weeks": 7 * 86400, "to_months": 30 * 86400,
	"to_years": 365 * 86400}

// constantInterval reads INTERVAL n UNIT (to_<unit>(n) in the tree) and
// CAST('n unit' AS INTERVAL) as seconds (months as 30 days: only to size a range).
func constantInterval(v any) (float64, bool) {
	m, ok := v.(object)
	if !ok {
		return 0, false
	}
	if per, isUnit := intervalUnits[foldASCII(m.str("function_name"))]; isUnit && m.str("class") == "FUNCTION" {
		args := children(m)
		if len(args) != 1 {
			return 0, false
		}
		n, ok := numberUnderCasts(args[0])
		return n * per, ok
	}
	ct, _ := m.get("cast_type").(object)
	s, isStr := constantString(m.get("child"))
	if m.str("class") != "CAST" || ct.str("id") != "INTERVAL" || !isStr {
		return 0, false
	}
	fields := strings.Fields(strings.ToLower(s))
	if len(fields) != 2 {
		return 0, false
	}
	n, err := strconv.ParseFloat(fields[0], 64)
	per, isUnit := intervalUnits["to_"+strings.TrimSuffix(fields[1], "s")+"s"]
	if err != nil || !isUnit {
		return 0, false
	}
	return n * per, true
}

// numberUnderCasts reads a number wrapped in casts and trunc(), as
// INTERVAL 1 DAY parses (to_days(CAST(trunc(CAST(1 AS DOUBLE)) AS INTEGER))).
func numberUnderCasts(v any) (float64, bool) {
	for {
		if n, ok := constantNumber(v); ok {
			return n, true
		}
		m, ok := v.(object)
		if !ok {
			return 0, false
		}
		switch {
		case m.str("class") == "CAST":
			v = m.get("child")
		case m.str("class") == "FUNCTION" && foldASCII(m.str("function_name")) == "trunc" && len(children(m)) == 1:
			v = children(m)[0]
		default:
			return 0, false
		}
	}
}

func formatSize(f float64) string {
	if f >= 1e15 {
		return strconv.FormatFloat(f, 'g', 3, 64)
	}
	return strconv.FormatInt(int64(f), 10)
}

// guardCall rewrites a builder call b(x0, x1, ...) into one that computes its
// arguments once, checks the size, and only then builds:
//
//	list_extract(list_transform([{'a0': x0, 'a1': x1}], __agnes_p ->
//	    CASE WHEN size > limit THEN error('...') ELSE b(__agnes_p.a0, __agnes_p.a1) END), 1)
//
// The template is parsed by DuckDB itself, and the call's node is rewritten in
// place, so the tree stays exactly what DuckDB would have produced.
func (c *Checker) guardCall(ctx context.Context, m object, limit int64) error {
	name := foldASCII(m.str("function_name"))
	b := builders[name]
	args := children(m)
	fields := make([]string, len(args))
	params := make([]string, len(args))
	for i := range args {
		fields[i] = fmt.Sprintf("'a%d': __agnes_arg%d", i, i)
		params[i] = fmt.Sprintf("__agnes_p.a%d", i)
	}
	msg := fmt.Sprintf("%s would build ", name)
	tail := fmt.Sprintf(" %s, over the limit of %d %s per call (query.max_builder_size)", b.unit, limit, b.unit)
	tmpl := fmt.Sprintf("SELECT list_extract(list_transform([{%s}], __agnes_p -> CASE WHEN (%s) > %d THEN "+
		"error(%s || (%s) || %s) ELSE %s(%s) END), 1)", strings.Join(fields, ", "), b.size, limit,
		quote(msg), b.size, quote(tail), name, strings.Join(params, ", "))
	node, err := c.parseExpression(ctx, tmpl)
	if err != nil {
		return fmt.Errorf("sqlguard: guard template: %w", err)
	}
	substitute(node, args)
	// The call's node becomes the template's, member by member (same keys: a
	// FUNCTION node), keeping the call's alias and position.
	for _, mem := range node {
		if mem.key == "alias" || mem.key == "query_location" {
			continue
		}
		if !m.set(mem.key, mem.value) {
			return fmt.Errorf("sqlguard: guard template: unexpected member %q", mem.key)
		}
	}
	return nil
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// substitute replaces the template's column references __agnes_argN with the
// call's original arguments.
func substitute(v any, args []any) any {
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			x[i] = substitute(e, args)
		}
	case object:
		if x.str("class") == "COLUMN_REF" {
			if names, ok := x.get("column_names").([]any); ok && len(names) == 1 {
				if s, _ := names[0].(string); strings.HasPrefix(s, "__agnes_arg") {
					if i, err := strconv.Atoi(strings.TrimPrefix(s, "__agnes_arg")); err == nil && i < len(args) {
						// The argument takes the reference's alias: struct_pack names
						// its fields by their children's aliases.
						if arg, ok := args[i].(object); ok {
							arg.set("alias", x.get("alias"))
						}
						return args[i]
					}
				}
			}
		}
		for i := range x {
			x[i].value = substitute(x[i].value, args)
		}
	}
	return v
}
