package engine

import (
	"fmt"
	"strings"

	bindings "github.com/duckdb/duckdb-go-bindings"
)

// columns describes the result's columns: names and DuckDB type names.
func (s *stream) columns() []Column {
	cols := make([]Column, len(s.types))
	for i, t := range s.types {
		cols[i] = Column{Name: s.names[i], Type: typeName(t)}
	}
	return cols
}

// typeName is the DuckDB type name duckdb-go reports for a column
// (ColumnTypeDatabaseTypeName).
func typeName(t bindings.LogicalType) string {
	if bindings.LogicalTypeGetAlias(t) == "JSON" {
		return "JSON"
	}
	switch bindings.GetTypeId(t) {
	case bindings.TypeDecimal:
		return fmt.Sprintf("DECIMAL(%d,%d)", bindings.DecimalWidth(t), bindings.DecimalScale(t))
	case bindings.TypeList:
		child := bindings.ListTypeChildType(t)
		defer bindings.DestroyLogicalType(&child)
		return nestedName(child) + "[]"
	case bindings.TypeArray:
		child := bindings.ArrayTypeChildType(t)
		defer bindings.DestroyLogicalType(&child)
		return fmt.Sprintf("%s[%d]", nestedName(child), bindings.ArrayTypeArraySize(t))
	case bindings.TypeMap:
		key, val := bindings.MapTypeKeyType(t), bindings.MapTypeValueType(t)
		defer bindings.DestroyLogicalType(&key)
		defer bindings.DestroyLogicalType(&val)
		return "MAP(" + nestedName(key) + ", " + nestedName(val) + ")"
	case bindings.TypeStruct:
		n := bindings.StructTypeChildCount(t)
		parts := make([]string, n)
		for j := range n {
			child := bindings.StructTypeChildType(t, j)
			parts[j] = fieldName(bindings.StructTypeChildName(t, j)) + " " + nestedName(child)
			bindings.DestroyLogicalType(&child)
		}
		return "STRUCT(" + strings.Join(parts, ", ") + ")"
	case bindings.TypeUnion:
		n := bindings.UnionTypeMemberCount(t)
		parts := make([]string, n)
		for j := range n {
			m := bindings.UnionTypeMemberType(t, j)
			parts[j] = fieldName(bindings.UnionTypeMemberName(t, j)) + " " + nestedName(m)
			bindings.DestroyLogicalType(&m)
		}
		return "UNION(" + strings.Join(parts, ", ") + ")"
	}
	return typeNames[bindings.GetTypeId(t)]
}

// nestedName names a type inside a nested one: duckdb-go does not
// special-case JSON there.
func nestedName(t bindings.LogicalType) string {
	if bindings.LogicalTypeGetAlias(t) == "JSON" {
		return "VARCHAR"
	}
	return typeName(t)
}

func fieldName(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

var typeNames = map[bindings.Type]string{
	bindings.TypeInvalid:     "INVALID",
	bindings.TypeBoolean:     "BOOLEAN",
	bindings.TypeTinyInt:     "TINYINT",
	bindings.TypeSmallInt:    "SMALLINT",
	bindings.TypeInteger:     "INTEGER",
	bindings.TypeBigInt:      "BIGINT",
	bindings.TypeUTinyInt:    "UTINYINT",
	bindings.TypeUSmallInt:   "USMALLINT",
	bindings.TypeUInteger:    "UINTEGER",
	bindings.TypeUBigInt:     "UBIGINT",
	bindings.TypeFloat:       "FLOAT",
	bindings.TypeDouble:      "DOUBLE",
	bindings.TypeTimestamp:   "TIMESTAMP",
	bindings.TypeDate:        "DATE",
	bindings.TypeTime:        "TIME",
	bindings.TypeInterval:    "INTERVAL",
	bindings.TypeHugeInt:     "HUGEINT",
	bindings.TypeUHugeInt:    "UHUGEINT",
	bindings.TypeVarchar:     "VARCHAR",
	bindings.TypeBlob:        "BLOB",
	bindings.TypeTimestampS:  "TIMESTAMP_S",
	bindings.TypeTimestampMS: "TIMESTAMP_MS",
	bindings.TypeTimestampNS: "TIMESTAMP_NS",
	bindings.TypeEnum:        "ENUM",
	bindings.TypeUUID:        "UUID",
	bindings.TypeBit:         "BIT",
	bindings.TypeTimeTZ:      "TIMETZ",
	bindings.TypeTimestampTZ: "TIMESTAMPTZ",
	bindings.TypeAny:         "ANY",
	bindings.TypeBigNum:      "BIGNUM",
	bindings.TypeSQLNull:     "SQLNULL",
	bindings.TypeTimeNS:      "TIME_NS",
	bindings.TypeGeometry:    "GEOMETRY",
	bindings.TypeVariant:     "VARIANT",
}
