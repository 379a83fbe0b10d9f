package keboola

import (
	"strconv"
	"strings"
)

// column is a table column with the DuckDB type its values are cast to.
type column struct {
	Name string
	Type string // VARCHAR, BIGINT, DOUBLE, DECIMAL(p,s), BOOLEAN, DATE, TIMESTAMP
}

// providerPriority orders whose KBC.datatype metadata types an untyped
// table's column (as the Python connector did): a user's choice over the
// AI enrichment over a Snowflake transformation. Other providers are not
// trusted; a column without a type from these stays VARCHAR.
var providerPriority = []string{"user", "ai-metadata-enrichment", "keboola.snowflake-transformation"}

// columns returns the table's columns with their types: from definition
// for a typed table, else from the column metadata (an alias's source's
// when its own is empty).
func columns(t *table) []column {
	out := make([]column, len(t.Columns))
	if t.IsTyped && t.Definition != nil {
		defs := map[string]int{}
		for i, d := range t.Definition.Columns {
			defs[d.Name] = i
		}
		for i, name := range t.Columns {
			out[i] = column{Name: name, Type: "VARCHAR"}
			if j, ok := defs[name]; ok {
				d := t.Definition.Columns[j]
				out[i].Type = duckType(cmpOr(d.BaseType, baseOf(d.Definition.Type)), string(d.Definition.Length))
			}
		}
		return out
	}
	meta := t.ColumnMetadata
	if len(meta) == 0 && t.SourceTable != nil {
		meta = t.SourceTable.ColumnMetadata
	}
	for i, name := range t.Columns {
		base, length := metadataType(meta[name])
		out[i] = column{Name: name, Type: duckType(base, length)}
	}
	return out
}

// metadataType resolves a column's base type and length from its
// metadata: KBC.datatype.basetype (else KBC.datatype.type) of the first
// provider in providerPriority that set one; STRING when none did.
func metadataType(list []metadata) (base, length string) {
	for _, p := range providerPriority {
		var typ string
		for _, m := range list {
			if m.Provider != p {
				continue
			}
			switch m.Key {
			case "KBC.datatype.basetype":
				base = strings.ToUpper(m.Value)
			case "KBC.datatype.type":
				typ = m.Value
			case "KBC.datatype.length":
				length = m.Value
			}
		}
		if base == "" && typ != "" {
			base = baseOf(typ)
		}
		if base != "" {
			return base, length
		}
		length = ""
	}
	return "STRING", ""
}

// baseOf maps a backend type name (NUMBER, TIMESTAMP_NTZ, ...) to a base type.
func baseOf(typ string) string {
	t := strings.ToUpper(strings.TrimSpace(typ))
	if i := strings.IndexByte(t, '('); i >= 0 {
		t = t[:i]
	}
	switch t {
	case "INTEGER", "INT", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT", "INT64":
		return "INTEGER"
	case "NUMBER", "NUMERIC", "DECIMAL", "BIGNUMERIC":
		return "NUMERIC"
	case "FLOAT", "FLOAT4", "FLOAT8", "FLOAT64", "DOUBLE", "DOUBLE PRECISION", "REAL":
		return "FLOAT"
	case "BOOLEAN", "BOOL":
		return "BOOLEAN"
	case "DATE":
		return "DATE"
	case "TIMESTAMP", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ", "DATETIME":
		return "TIMESTAMP"
	}
	return "STRING"
}

// duckType is the DuckDB type of a base type. NUMERIC with a length
// "p,s" (p ≤ 38) is DECIMAL(p,s), else DOUBLE; unknown types are VARCHAR.
func duckType(base, length string) string {
	switch strings.ToUpper(base) {
	case "INTEGER":
		return "BIGINT"
	case "NUMERIC":
		p, s, ok := strings.Cut(length, ",")
		if !ok {
			s = "0"
		}
		prec, err1 := strconv.Atoi(strings.TrimSpace(p))
		scale, err2 := strconv.Atoi(strings.TrimSpace(s))
		if err1 == nil && err2 == nil && prec >= 1 && prec <= 38 && scale >= 0 && scale <= prec {
			return "DECIMAL(" + strconv.Itoa(prec) + "," + strconv.Itoa(scale) + ")"
		}
		return "DOUBLE"
	case "FLOAT":
		return "DOUBLE"
	case "BOOLEAN":
		return "BOOLEAN"
	case "DATE":
		return "DATE"
	case "TIMESTAMP":
		return "TIMESTAMP"
	}
	return "VARCHAR"
}
