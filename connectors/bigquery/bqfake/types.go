package bqfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/civil"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Field is a column of a fake table in BigQuery's REST terms: Type is a
// legacy name (INTEGER, FLOAT, NUMERIC, BIGNUMERIC, BOOLEAN, STRING, BYTES,
// DATE, DATETIME, TIME, TIMESTAMP, GEOGRAPHY, JSON, INTERVAL, RECORD),
// Mode is NULLABLE (also when empty), REQUIRED or REPEATED.
type Field struct {
	Name        string
	Type        string
	Mode        string
	Fields      []Field // of a RECORD
	Precision   int64   // of a parameterized NUMERIC/BIGNUMERIC; 0 = default
	Scale       int64
	Description string
}

func (f Field) repeated() bool { return f.Mode == "REPEATED" }

// duckType is the DuckDB column type that holds f's values. GEOGRAPHY and
// BIGNUMERIC are kept as text (DuckDB has no 76-digit decimal); the fake
// remembers their names to report them back (see Server.hints).
func duckType(f Field) (string, error) {
	var t string
	switch f.Type {
	case "INTEGER", "INT64":
		t = "BIGINT"
	case "FLOAT", "FLOAT64":
		t = "DOUBLE"
	case "NUMERIC":
		p, s := int64(38), int64(9)
		if f.Precision > 0 {
			p, s = f.Precision, f.Scale
		}
		t = fmt.Sprintf("DECIMAL(%d,%d)", p, s)
	case "BOOLEAN", "BOOL":
		t = "BOOLEAN"
	case "STRING", "GEOGRAPHY", "BIGNUMERIC":
		t = "VARCHAR"
	case "BYTES":
		t = "BLOB"
	case "DATE":
		t = "DATE"
	case "DATETIME":
		t = "TIMESTAMP"
	case "TIME":
		t = "TIME"
	case "TIMESTAMP":
		t = "TIMESTAMPTZ"
	case "JSON":
		t = "JSON"
	case "INTERVAL":
		t = "INTERVAL"
	case "RECORD", "STRUCT":
		if len(f.Fields) == 0 {
			return "", fmt.Errorf("RECORD %s has no fields", f.Name)
		}
		parts := make([]string, len(f.Fields))
		for i, sub := range f.Fields {
			st, err := duckType(sub)
			if err != nil {
				return "", err
			}
			parts[i] = quoteIdent(sub.Name) + " " + st
		}
		t = "STRUCT(" + strings.Join(parts, ", ") + ")"
	default:
		return "", fmt.Errorf("field %s: type %q is not supported by the fake", f.Name, f.Type)
	}
	if f.repeated() {
		t += "[]"
	}
	return t, nil
}

// fieldOf maps a DuckDB result column type (as DESCRIBE spells it) back to
// a BigQuery field, as BigQuery would type the same expression.
func fieldOf(name, duck string) (Field, error) {
	duck = strings.TrimSpace(duck)
	if inner, ok := strings.CutSuffix(duck, "[]"); ok {
		f, err := fieldOf(name, inner)
		if err != nil {
			return Field{}, err
		}
		if f.repeated() {
			return Field{}, fmt.Errorf("column %s: BigQuery has no ARRAY of ARRAY", name)
		}
		f.Mode = "REPEATED"
		return f, nil
	}
	upper := strings.ToUpper(duck)
	switch {
	case strings.HasPrefix(upper, "STRUCT("):
		f := Field{Name: name, Type: "RECORD", Mode: "NULLABLE"}
		for _, part := range splitTop(duck[len("STRUCT(") : len(duck)-1]) {
			sub, typ := splitNameType(part)
			sf, err := fieldOf(sub, typ)
			if err != nil {
				return Field{}, err
			}
			f.Fields = append(f.Fields, sf)
		}
		return f, nil
	case strings.HasPrefix(upper, "DECIMAL("):
		var p, s int64
		if _, err := fmt.Sscanf(upper, "DECIMAL(%d,%d)", &p, &s); err != nil {
			return Field{}, fmt.Errorf("column %s: type %s: %w", name, duck, err)
		}
		if s <= 9 && p-s <= 29 {
			return Field{Name: name, Type: "NUMERIC", Mode: "NULLABLE"}, nil
		}
		return Field{Name: name, Type: "BIGNUMERIC", Mode: "NULLABLE"}, nil
	}
	typ, ok := map[string]string{
		"BIGINT": "INTEGER", "INTEGER": "INTEGER", "SMALLINT": "INTEGER", "TINYINT": "INTEGER",
		"UBIGINT": "INTEGER", "UINTEGER": "INTEGER", "USMALLINT": "INTEGER", "UTINYINT": "INTEGER",
		"HUGEINT": "INTEGER", "DOUBLE": "FLOAT", "FLOAT": "FLOAT", "BOOLEAN": "BOOLEAN",
		"VARCHAR": "STRING", "UUID": "STRING", "BLOB": "BYTES", "DATE": "DATE", "TIME": "TIME",
		"TIMESTAMP": "DATETIME", "TIMESTAMP WITH TIME ZONE": "TIMESTAMP", "JSON": "JSON",
		"INTERVAL": "INTERVAL", `"NULL"`: "INTEGER", "NULL": "INTEGER",
	}[upper]
	if !ok {
		return Field{}, fmt.Errorf("column %s: DuckDB type %s has no BigQuery counterpart in the fake", name, duck)
	}
	return Field{Name: name, Type: typ, Mode: "NULLABLE"}, nil
}

// splitTop splits a STRUCT's member list at the commas outside parentheses
// and quotes.
func splitTop(s string) []string {
	var out []string
	depth, start, quoted := 0, 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// splitNameType splits `"a b" VARCHAR` or `a VARCHAR` into name and type.
func splitNameType(s string) (string, string) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, `"`) {
		for i := 1; i < len(s); i++ {
			if s[i] == '"' {
				if i+1 < len(s) && s[i+1] == '"' {
					i++
					continue
				}
				return strings.ReplaceAll(s[1:i], `""`, `"`), strings.TrimSpace(s[i+1:])
			}
		}
	}
	name, typ, _ := strings.Cut(s, " ")
	return name, strings.TrimSpace(typ)
}

// cell encodes one value the way BigQuery puts it in rows[].f[].v: every
// scalar a string, REPEATED an array of {"v":…}, RECORD {"f":[…]}, NULL
// nil (an empty array when REPEATED: BigQuery arrays are never NULL).
func cell(f Field, v any) (any, error) {
	if f.repeated() {
		items, _ := v.([]any)
		out := make([]any, 0, len(items))
		elem := f
		elem.Mode = "NULLABLE"
		for _, it := range items {
			c, err := cell(elem, it)
			if err != nil {
				return nil, err
			}
			out = append(out, map[string]any{"v": c})
		}
		return out, nil
	}
	if v == nil {
		return nil, nil
	}
	switch f.Type {
	case "RECORD":
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("field %s: RECORD value is %T", f.Name, v)
		}
		cells := make([]any, len(f.Fields))
		for i, sub := range f.Fields {
			c, err := cell(sub, m[sub.Name])
			if err != nil {
				return nil, err
			}
			cells[i] = map[string]any{"v": c}
		}
		return map[string]any{"f": cells}, nil
	case "INTEGER":
		switch n := v.(type) {
		case *big.Int:
			return n.String(), nil
		default:
			return fmt.Sprint(n), nil
		}
	case "FLOAT":
		x, ok := v.(float64)
		if !ok {
			if f32, ok32 := v.(float32); ok32 {
				x, ok = float64(f32), true
			}
		}
		if !ok {
			return nil, fmt.Errorf("field %s: FLOAT value is %T", f.Name, v)
		}
		switch {
		case math.IsNaN(x):
			return "NaN", nil
		case math.IsInf(x, 1):
			return "Infinity", nil
		case math.IsInf(x, -1):
			return "-Infinity", nil
		}
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case "NUMERIC", "BIGNUMERIC":
		switch d := v.(type) {
		case duckdb.Decimal:
			return decimalString(d), nil
		case string:
			return d, nil
		}
		return fmt.Sprint(v), nil
	case "BOOLEAN":
		return strconv.FormatBool(v.(bool)), nil
	case "BYTES":
		b, ok := v.([]byte)
		if !ok {
			return nil, fmt.Errorf("field %s: BYTES value is %T", f.Name, v)
		}
		return base64.StdEncoding.EncodeToString(b), nil
	case "DATE":
		return civil.DateOf(v.(time.Time)).String(), nil
	case "TIME":
		return civil.TimeOf(v.(time.Time)).String(), nil
	case "DATETIME":
		return civil.DateTimeOf(v.(time.Time)).String(), nil
	case "TIMESTAMP":
		return strconv.FormatInt(v.(time.Time).UnixMicro(), 10), nil
	case "JSON":
		if s, ok := v.(string); ok {
			return s, nil
		}
		b, err := json.Marshal(v)
		return string(b), err
	case "INTERVAL":
		iv, ok := v.(duckdb.Interval)
		if !ok {
			return fmt.Sprint(v), nil
		}
		return intervalString(iv), nil
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	return fmt.Sprint(v), nil
}

func decimalString(d duckdb.Decimal) string {
	r := new(big.Rat).SetFrac(d.Value, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.Scale)), nil))
	s := r.FloatString(int(d.Scale))
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// intervalString is BigQuery's canonical INTERVAL text, "Y-M D H:M:S[.F]".
func intervalString(iv duckdb.Interval) string {
	sign := ""
	micros := iv.Micros
	if micros < 0 {
		sign, micros = "-", -micros
	}
	h := micros / 3_600_000_000
	m := micros / 60_000_000 % 60
	s := micros / 1_000_000 % 60
	out := fmt.Sprintf("%d-%d %d %s%d:%d:%d", iv.Months/12, abs(iv.Months%12), iv.Days, sign, h, m, s)
	if frac := micros % 1_000_000; frac != 0 {
		out += "." + strings.TrimRight(fmt.Sprintf("%06d", frac), "0")
	}
	return out
}

func abs(n int32) int32 {
	if n < 0 {
		return -n
	}
	return n
}

// schemaJSON is a TableSchema as the REST API sends it.
func schemaJSON(fields []Field) map[string]any {
	return map[string]any{"fields": fieldsJSON(fields)}
}

func fieldsJSON(fields []Field) []any {
	out := make([]any, len(fields))
	for i, f := range fields {
		m := map[string]any{"name": f.Name, "type": f.Type}
		if f.Mode != "" {
			m["mode"] = f.Mode
		}
		if len(f.Fields) > 0 {
			m["fields"] = fieldsJSON(f.Fields)
		}
		if f.Precision > 0 {
			m["precision"] = strconv.FormatInt(f.Precision, 10) // int64: a string on the wire
			m["scale"] = strconv.FormatInt(f.Scale, 10)
		}
		if f.Description != "" {
			m["description"] = f.Description
		}
		out[i] = m
	}
	return out
}

// googleSQLType is a field's type in GoogleSQL spelling, as
// INFORMATION_SCHEMA.COLUMNS.data_type shows it.
func googleSQLType(f Field) string {
	t := map[string]string{"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}[f.Type]
	switch {
	case t != "":
	case f.Type == "RECORD":
		parts := make([]string, len(f.Fields))
		for i, sub := range f.Fields {
			parts[i] = sub.Name + " " + googleSQLType(sub)
		}
		t = "STRUCT<" + strings.Join(parts, ", ") + ">"
	case f.Precision > 0:
		t = fmt.Sprintf("%s(%d, %d)", f.Type, f.Precision, f.Scale)
	default:
		t = f.Type
	}
	if f.repeated() {
		return "ARRAY<" + t + ">"
	}
	return t
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
