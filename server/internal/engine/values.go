package engine

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	bindings "github.com/duckdb/duckdb-go-bindings"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// RunRows reads the same Arrow batches as RunArrow and turns them into the
// Go values duckdb-go's database/sql driver scans, so row sinks see what
// they always saw. Arrow alone is ambiguous (HUGEINT and DECIMAL are both
// decimal128, UUID and JSON are strings, BIT and BIGNUM are binary), so a
// column's decoder is chosen by its DuckDB type and reads the Arrow array
// DuckDB makes for that type.

// decoder returns the Go value of row i of a (non-null at i) Arrow array.
// Strings and bytes are copied: the batch's buffers are DuckDB's and go
// away with it.
type decoder func(a arrow.Array, i int) (any, error)

// column is a result column of RunRows: its name, DuckDB type name and
// decoder.
type column struct {
	Column
	decode decoder
}

func (s *stream) columns() []column {
	cols := make([]column, len(s.types))
	for i, t := range s.types {
		cols[i] = column{Column: Column{Name: s.names[i], Type: typeName(t)}, decode: newDecoder(t)}
	}
	return cols
}

// value decodes row i of a, nil if it is NULL.
func value(d decoder, a arrow.Array, i int) (any, error) {
	if a.IsNull(i) {
		return nil, nil
	}
	return d(a, i)
}

type valuer[T any] interface{ Value(int) T }

func plain[T any, A valuer[T]](a arrow.Array, i int) (any, error) {
	v, ok := a.(A)
	if !ok {
		return nil, unexpected(a)
	}
	return v.Value(i), nil
}

func unexpected(a arrow.Array) error {
	return fmt.Errorf("unexpected Arrow array %s", a.DataType())
}

func newDecoder(t bindings.LogicalType) decoder {
	if bindings.LogicalTypeGetAlias(t) == "JSON" {
		return decodeJSON
	}
	switch bindings.GetTypeId(t) {
	case bindings.TypeBoolean:
		return plain[bool, *array.Boolean]
	case bindings.TypeTinyInt:
		return plain[int8, *array.Int8]
	case bindings.TypeSmallInt:
		return plain[int16, *array.Int16]
	case bindings.TypeInteger:
		return plain[int32, *array.Int32]
	case bindings.TypeBigInt:
		return plain[int64, *array.Int64]
	case bindings.TypeUTinyInt:
		return plain[uint8, *array.Uint8]
	case bindings.TypeUSmallInt:
		return plain[uint16, *array.Uint16]
	case bindings.TypeUInteger:
		return plain[uint32, *array.Uint32]
	case bindings.TypeUBigInt:
		return plain[uint64, *array.Uint64]
	case bindings.TypeFloat:
		return plain[float32, *array.Float32]
	case bindings.TypeDouble:
		return plain[float64, *array.Float64]
	case bindings.TypeVarchar, bindings.TypeEnum:
		return decodeString
	case bindings.TypeBlob, bindings.TypeGeometry:
		return decodeBytes
	case bindings.TypeUUID:
		return decodeUUID
	case bindings.TypeBit:
		return decodeBit
	case bindings.TypeBigNum:
		return decodeBigNum
	case bindings.TypeHugeInt, bindings.TypeUHugeInt:
		return decodeBigInt
	case bindings.TypeDecimal:
		width, scale := bindings.DecimalWidth(t), bindings.DecimalScale(t)
		return func(a arrow.Array, i int) (any, error) {
			v, err := decodeBigInt(a, i)
			if err != nil {
				return nil, err
			}
			return duckdb.Decimal{Width: width, Scale: scale, Value: v.(*big.Int)}, nil
		}
	case bindings.TypeDate:
		return decodeDate
	case bindings.TypeTime, bindings.TypeTimeTZ, bindings.TypeTimeNS:
		return decodeTime
	case bindings.TypeTimestamp, bindings.TypeTimestampS, bindings.TypeTimestampMS,
		bindings.TypeTimestampNS, bindings.TypeTimestampTZ:
		return decodeTimestamp
	case bindings.TypeInterval:
		return decodeInterval
	case bindings.TypeList, bindings.TypeArray:
		var child bindings.LogicalType
		if bindings.GetTypeId(t) == bindings.TypeList {
			child = bindings.ListTypeChildType(t)
		} else {
			child = bindings.ArrayTypeChildType(t)
		}
		defer bindings.DestroyLogicalType(&child)
		return listDecoder(newDecoder(child))
	case bindings.TypeStruct:
		return structDecoder(t)
	case bindings.TypeMap:
		key, val := bindings.MapTypeKeyType(t), bindings.MapTypeValueType(t)
		defer bindings.DestroyLogicalType(&key)
		defer bindings.DestroyLogicalType(&val)
		return mapDecoder(newDecoder(key), newDecoder(val))
	case bindings.TypeUnion:
		return unionDecoder(t)
	case bindings.TypeSQLNull:
		return func(arrow.Array, int) (any, error) { return nil, nil }
	}
	// Types duckdb-go cannot scan (VARIANT, ...): Arrow's text form.
	return func(a arrow.Array, i int) (any, error) { return a.ValueStr(i), nil }
}

func decodeString(a arrow.Array, i int) (any, error) {
	switch a := a.(type) {
	case valuer[string]: // String, LargeString, StringView
		return strings.Clone(a.Value(i)), nil
	case *array.Dictionary: // ENUM
		return decodeString(a.Dictionary(), a.GetValueIndex(i))
	}
	return nil, unexpected(a)
}

func decodeBytes(a arrow.Array, i int) (any, error) {
	switch a := a.(type) {
	case valuer[[]byte]: // Binary, LargeBinary, BinaryView, FixedSizeBinary
		return bytes.Clone(a.Value(i)), nil
	case valuer[string]:
		return []byte(a.Value(i)), nil
	}
	return nil, unexpected(a)
}

// decodeUUID returns the 16 bytes, as duckdb-go does; DuckDB sends UUIDs
// to Arrow as their text.
func decodeUUID(a arrow.Array, i int) (any, error) {
	if b, ok := a.(valuer[[]byte]); ok {
		return bytes.Clone(b.Value(i)), nil
	}
	s, ok := a.(valuer[string])
	if !ok {
		return nil, unexpected(a)
	}
	u, err := hex.DecodeString(strings.ReplaceAll(s.Value(i), "-", ""))
	if err != nil || len(u) != 16 {
		return nil, fmt.Errorf("invalid UUID %q", s.Value(i))
	}
	return u, nil
}

// decodeBit returns the bit string ("0101"), as duckdb-go's rows do; Arrow
// carries DuckDB's own encoding (a padding byte, then the bits).
func decodeBit(a arrow.Array, i int) (any, error) {
	b, ok := a.(valuer[[]byte])
	if !ok {
		return nil, unexpected(a)
	}
	return duckdb.Bit{Data: b.Value(i)}.String(), nil
}

// decodeBigNum reads DuckDB's BIGNUM encoding, which Arrow carries as is:
// a 3-byte header whose top bit is set for positive numbers, then the
// big-endian magnitude, every byte complemented for negative numbers.
func decodeBigNum(a arrow.Array, i int) (any, error) {
	b, ok := a.(valuer[[]byte])
	if !ok {
		return nil, unexpected(a)
	}
	data := b.Value(i)
	if len(data) < 4 {
		return big.NewInt(0), nil
	}
	if data[0]&0x80 != 0 {
		return new(big.Int).SetBytes(data[3:]), nil
	}
	mag := make([]byte, len(data)-3)
	for j, c := range data[3:] {
		mag[j] = ^c
	}
	n := new(big.Int).SetBytes(mag)
	return n.Neg(n), nil
}

// decodeBigInt reads a decimal array's unscaled integer (HUGEINT and
// UHUGEINT arrive as DECIMAL(38,0)).
func decodeBigInt(a arrow.Array, i int) (any, error) {
	switch a := a.(type) {
	case *array.Decimal128:
		return a.Value(i).BigInt(), nil
	case *array.Decimal256:
		return a.Value(i).BigInt(), nil
	case *array.Decimal64:
		return big.NewInt(int64(a.Value(i))), nil
	case *array.Decimal32:
		return big.NewInt(int64(a.Value(i))), nil
	}
	return nil, unexpected(a)
}

func decodeDate(a arrow.Array, i int) (any, error) {
	switch a := a.(type) {
	case *array.Date32:
		return a.Value(i).ToTime(), nil
	case *array.Date64:
		return a.Value(i).ToTime(), nil
	}
	return nil, unexpected(a)
}

// decodeTime returns the time of day on 0001-01-01 UTC, as duckdb-go does.
// DuckDB's Arrow form of TIMETZ drops the offset.
func decodeTime(a arrow.Array, i int) (any, error) {
	var d time.Duration
	switch a := a.(type) {
	case *array.Time64:
		d = time.Duration(a.Value(i)) * a.DataType().(*arrow.Time64Type).Unit.Multiplier()
	case *array.Time32:
		d = time.Duration(a.Value(i)) * a.DataType().(*arrow.Time32Type).Unit.Multiplier()
	default:
		return nil, unexpected(a)
	}
	return time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC).Add(d), nil
}

func decodeTimestamp(a arrow.Array, i int) (any, error) {
	ts, ok := a.(*array.Timestamp)
	if !ok {
		return nil, unexpected(a)
	}
	return ts.Value(i).ToTime(ts.DataType().(*arrow.TimestampType).Unit).UTC(), nil
}

func decodeInterval(a arrow.Array, i int) (any, error) {
	switch a := a.(type) {
	case *array.MonthDayNanoInterval:
		v := a.Value(i)
		return duckdb.Interval{Months: v.Months, Days: v.Days, Micros: v.Nanoseconds / 1000}, nil
	case *array.DayTimeInterval:
		v := a.Value(i)
		return duckdb.Interval{Days: v.Days, Micros: int64(v.Milliseconds) * 1000}, nil
	case *array.MonthInterval:
		return duckdb.Interval{Months: int32(a.Value(i))}, nil
	}
	return nil, unexpected(a)
}

func decodeJSON(a arrow.Array, i int) (any, error) {
	s, ok := a.(valuer[string])
	if !ok {
		return nil, unexpected(a)
	}
	var v any
	if err := json.Unmarshal([]byte(s.Value(i)), &v); err != nil {
		return nil, err
	}
	return v, nil
}

// listDecoder reads LIST and ARRAY values as []any.
func listDecoder(child decoder) decoder {
	return func(a arrow.Array, i int) (any, error) {
		l, ok := a.(array.ListLike) // List, LargeList, ListView, FixedSizeList
		if !ok {
			return nil, unexpected(a)
		}
		start, end := l.ValueOffsets(i)
		values := l.ListValues()
		out := make([]any, 0, end-start)
		for j := start; j < end; j++ {
			v, err := value(child, values, int(j))
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
}

// structDecoder reads STRUCT values as map[string]any.
func structDecoder(t bindings.LogicalType) decoder {
	n := int(bindings.StructTypeChildCount(t))
	names := make([]string, n)
	fields := make([]decoder, n)
	for j := range n {
		names[j] = bindings.StructTypeChildName(t, bindings.IdxT(j))
		child := bindings.StructTypeChildType(t, bindings.IdxT(j))
		fields[j] = newDecoder(child)
		bindings.DestroyLogicalType(&child)
	}
	return func(a arrow.Array, i int) (any, error) {
		s, ok := a.(*array.Struct)
		if !ok || s.NumField() != n {
			return nil, unexpected(a)
		}
		out := make(map[string]any, n)
		for j, d := range fields {
			v, err := value(d, s.Field(j), i)
			if err != nil {
				return nil, err
			}
			out[names[j]] = v
		}
		return out, nil
	}
}

var errMapKey = errors.New("unsupported MAP key type")

// mapDecoder reads MAP values as duckdb.OrderedMap.
func mapDecoder(key, val decoder) decoder {
	return func(a arrow.Array, i int) (any, error) {
		m, ok := a.(*array.Map)
		if !ok {
			return nil, unexpected(a)
		}
		start, end := m.ValueOffsets(i)
		keys, items := m.Keys(), m.Items()
		var out duckdb.OrderedMap
		for j := int(start); j < int(end); j++ {
			k, err := value(key, keys, j)
			if err != nil {
				return nil, err
			}
			if k != nil && !reflect.TypeOf(k).Comparable() {
				return nil, errMapKey
			}
			v, err := value(val, items, j)
			if err != nil {
				return nil, err
			}
			out.Set(k, v)
		}
		return out, nil
	}
}

// unionDecoder reads UNION values as duckdb.Union; DuckDB numbers the Arrow
// type codes by member.
func unionDecoder(t bindings.LogicalType) decoder {
	n := int(bindings.UnionTypeMemberCount(t))
	tags := make([]string, n)
	members := make([]decoder, n)
	for j := range n {
		tags[j] = bindings.UnionTypeMemberName(t, bindings.IdxT(j))
		m := bindings.UnionTypeMemberType(t, bindings.IdxT(j))
		members[j] = newDecoder(m)
		bindings.DestroyLogicalType(&m)
	}
	return func(a arrow.Array, i int) (any, error) {
		u, ok := a.(array.Union)
		if !ok {
			return nil, unexpected(a)
		}
		child := u.ChildID(i)
		if child < 0 || child >= n {
			return nil, unexpected(a)
		}
		at := i
		if d, ok := u.(*array.DenseUnion); ok {
			at = int(d.ValueOffset(i))
		}
		v, err := value(members[child], u.Field(child), at)
		if err != nil {
			return nil, err
		}
		return duckdb.Union{Tag: tags[child], Value: v}, nil
	}
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
