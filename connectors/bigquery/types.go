package bigquery

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"sync"
	"time"

	bq "cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/agnesdata/agnes/connectors/extract"
)

// The type mapping (shared/docs/reference/bigquery-rest.md §10), used both
// for the Parquet of materialized tables and the Arrow of remote results:
//
//	INTEGER     BIGINT                    int64
//	FLOAT       DOUBLE                    float64
//	NUMERIC     DECIMAL(38,9) or (P,S)    decimal128
//	BIGNUMERIC  DECIMAL(P,S) if P ≤ 38, else VARCHAR (exact text; DuckDB decimals stop at 38 digits)
//	BOOLEAN     BOOLEAN
//	STRING      VARCHAR
//	BYTES       BLOB
//	DATE        DATE
//	DATETIME    TIMESTAMP                 (no time zone)
//	TIME        TIME
//	TIMESTAMP   TIMESTAMPTZ               (an instant, unlike the Python path's naive TIMESTAMP)
//	GEOGRAPHY   VARCHAR                   (WKT)
//	JSON        JSON
//	INTERVAL    VARCHAR                   (BigQuery's canonical text, e.g. 1-2 3 4:5:6.5)
//	RANGE       VARCHAR                   ([start, end), as BigQuery prints it)
//	RECORD      STRUCT(...)               JSON when a field name cannot be written unquoted
//	REPEATED    T[]                       (a NULL array is empty, as BigQuery never has NULL arrays)

// defaultNumeric is NUMERIC without parameters.
const defaultPrecision, defaultScale = 38, 9

// decimalOf returns the DuckDB decimal that holds a NUMERIC/BIGNUMERIC
// field exactly, or ok=false.
func decimalOf(f *bq.FieldSchema) (p, s int32, ok bool) {
	switch {
	case f.Type == bq.NumericFieldType && f.Precision == 0:
		return defaultPrecision, defaultScale, true
	case f.Precision > 0 && f.Precision <= 38:
		return int32(f.Precision), int32(f.Scale), true
	}
	return 0, 0, false
}

// duckType is the DuckDB type of a column holding f.
func duckType(f *bq.FieldSchema) string {
	t := duckScalarType(f)
	if f.Repeated {
		t += "[]"
	}
	return t
}

func duckScalarType(f *bq.FieldSchema) string {
	switch f.Type {
	case bq.IntegerFieldType:
		return "BIGINT"
	case bq.FloatFieldType:
		return "DOUBLE"
	case bq.NumericFieldType, bq.BigNumericFieldType:
		if p, s, ok := decimalOf(f); ok {
			return fmt.Sprintf("DECIMAL(%d,%d)", p, s)
		}
		return "VARCHAR"
	case bq.BooleanFieldType:
		return "BOOLEAN"
	case bq.BytesFieldType:
		return "BLOB"
	case bq.DateFieldType:
		return "DATE"
	case bq.DateTimeFieldType:
		return "TIMESTAMP"
	case bq.TimeFieldType:
		return "TIME"
	case bq.TimestampFieldType:
		return "TIMESTAMPTZ"
	case bq.JSONFieldType:
		return "JSON"
	case bq.RecordFieldType:
		if !plainNames(f.Schema) {
			return "JSON"
		}
		parts := make([]string, len(f.Schema))
		for i, sub := range f.Schema {
			parts[i] = sub.Name + " " + duckType(sub)
		}
		return "STRUCT(" + strings.Join(parts, ", ") + ")"
	}
	return "VARCHAR" // STRING, GEOGRAPHY, INTERVAL, RANGE
}

var plainNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// plainNames reports whether every field name can stand unquoted in a
// DuckDB STRUCT type: extract.Writer.WriteRows accepts no quoted names,
// and DuckDB's reserved words (end, order, ...) need quotes.
func plainNames(s bq.Schema) bool {
	for _, f := range s {
		if !plainNameRE.MatchString(f.Name) || reservedWords()[strings.ToLower(f.Name)] {
			return false
		}
	}
	return true
}

// reservedWords are DuckDB's reserved keywords, from DuckDB itself.
var reservedWords = sync.OnceValue(func() map[string]bool {
	words := map[string]bool{}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return words
	}
	defer db.Close()
	rows, err := db.Query("SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'")
	if err != nil {
		return words
	}
	defer rows.Close()
	for rows.Next() {
		var w string
		if rows.Scan(&w) == nil {
			words[strings.ToLower(w)] = true
		}
	}
	return words
})

// columns are the extract columns of a result schema.
func columns(s bq.Schema) []extract.Column {
	cols := make([]extract.Column, len(s))
	for i, f := range s {
		cols[i] = extract.Column{Name: f.Name, Type: duckType(f)}
	}
	return cols
}

// duckValue converts a value the client decoded for f into what the
// DuckDB appender takes for duckType(f).
func duckValue(f *bq.FieldSchema, v bq.Value) (any, error) {
	if f.Repeated {
		items, _ := v.([]bq.Value)
		out := make([]any, len(items))
		for i, it := range items {
			x, err := duckScalar(f, it)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	}
	return duckScalar(f, v)
}

func duckScalar(f *bq.FieldSchema, v bq.Value) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch f.Type {
	case bq.NumericFieldType, bq.BigNumericFieldType:
		r, ok := v.(*big.Rat)
		if !ok {
			return nil, fmt.Errorf("column %s: %s value is %T", f.Name, f.Type, v)
		}
		if p, s, ok := decimalOf(f); ok {
			return duckdb.Decimal{Width: uint8(p), Scale: uint8(s), Value: unscaled(r, s)}, nil
		}
		return ratString(r), nil
	case bq.DateFieldType:
		d := v.(civil.Date)
		return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC), nil
	case bq.DateTimeFieldType:
		return v.(civil.DateTime).In(time.UTC), nil
	case bq.TimeFieldType:
		t := v.(civil.Time)
		return time.Date(1970, 1, 1, t.Hour, t.Minute, t.Second, t.Nanosecond, time.UTC), nil
	case bq.JSONFieldType:
		return json.RawMessage(v.(string)), nil
	case bq.IntervalFieldType, bq.RangeFieldType:
		return textOf(v), nil
	case bq.RecordFieldType:
		vals, _ := v.([]bq.Value)
		if len(vals) != len(f.Schema) {
			return nil, fmt.Errorf("column %s: RECORD has %d values for %d fields", f.Name, len(vals), len(f.Schema))
		}
		if !plainNames(f.Schema) {
			b, err := json.Marshal(jsonValue(f, v))
			return json.RawMessage(b), err
		}
		m := make(map[string]any, len(vals))
		for i, sub := range f.Schema {
			x, err := duckValue(sub, vals[i])
			if err != nil {
				return nil, err
			}
			m[sub.Name] = x
		}
		return m, nil
	}
	return v, nil // int64, float64, bool, string, []byte, time.Time (UTC)
}

// jsonValue renders a RECORD stored as JSON: an object by field name.
func jsonValue(f *bq.FieldSchema, v bq.Value) any {
	if v == nil {
		return nil
	}
	if f.Repeated {
		items, _ := v.([]bq.Value)
		out := make([]any, len(items))
		elem := *f
		elem.Repeated = false
		for i, it := range items {
			out[i] = jsonValue(&elem, it)
		}
		return out
	}
	switch x := v.(type) {
	case []bq.Value:
		m := make(map[string]any, len(x))
		for i, sub := range f.Schema {
			if i < len(x) {
				m[sub.Name] = jsonValue(sub, x[i])
			}
		}
		return m
	case *big.Rat:
		return json.Number(ratString(x))
	case civil.Date, civil.DateTime, civil.Time, *bq.IntervalValue, *bq.RangeValue:
		return textOf(x)
	case string:
		if f.Type == bq.JSONFieldType {
			return json.RawMessage(x)
		}
	}
	return v
}

// textOf renders INTERVAL, RANGE and civil values as BigQuery prints them.
func textOf(v bq.Value) string {
	switch x := v.(type) {
	case *bq.RangeValue:
		bound := func(b bq.Value) string {
			if b == nil {
				return "UNBOUNDED"
			}
			if t, ok := b.(time.Time); ok {
				return t.UTC().Format("2006-01-02 15:04:05.999999 UTC")
			}
			return textOf(b)
		}
		return "[" + bound(x.Start) + ", " + bound(x.End) + ")"
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// unscaled is r × 10^scale as an integer (exact for BigQuery's decimals,
// whose scale the declared scale bounds; rounded half away from zero
// otherwise).
func unscaled(r *big.Rat, scale int32) *big.Int {
	n := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
	if n.IsInt() {
		return new(big.Int).Set(n.Num())
	}
	q, m := new(big.Int).QuoRem(n.Num(), n.Denom(), new(big.Int))
	if new(big.Int).Mul(m.Abs(m), big.NewInt(2)).Cmp(n.Denom()) >= 0 {
		q.Add(q, big.NewInt(int64(n.Sign())))
	}
	return q
}

// ratString prints a decimal exactly, without trailing zeros.
func ratString(r *big.Rat) string {
	s := r.FloatString(38)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// arrowType is the Arrow type of a column holding f (see the table above).
func arrowType(f *bq.FieldSchema) arrow.DataType {
	t := arrowScalarType(f)
	if f.Repeated {
		return arrow.ListOfNonNullable(t)
	}
	return t
}

func arrowScalarType(f *bq.FieldSchema) arrow.DataType {
	switch f.Type {
	case bq.IntegerFieldType:
		return arrow.PrimitiveTypes.Int64
	case bq.FloatFieldType:
		return arrow.PrimitiveTypes.Float64
	case bq.NumericFieldType, bq.BigNumericFieldType:
		if p, s, ok := decimalOf(f); ok {
			return &arrow.Decimal128Type{Precision: p, Scale: s}
		}
		return arrow.BinaryTypes.String
	case bq.BooleanFieldType:
		return arrow.FixedWidthTypes.Boolean
	case bq.BytesFieldType:
		return arrow.BinaryTypes.Binary
	case bq.DateFieldType:
		return arrow.FixedWidthTypes.Date32
	case bq.DateTimeFieldType:
		return &arrow.TimestampType{Unit: arrow.Microsecond}
	case bq.TimeFieldType:
		return arrow.FixedWidthTypes.Time64us
	case bq.TimestampFieldType:
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	case bq.RecordFieldType:
		fields := make([]arrow.Field, len(f.Schema))
		for i, sub := range f.Schema {
			fields[i] = arrowField(sub)
		}
		return arrow.StructOf(fields...)
	}
	return arrow.BinaryTypes.String // STRING, GEOGRAPHY, JSON, INTERVAL, RANGE
}

func arrowField(f *bq.FieldSchema) arrow.Field {
	return arrow.Field{Name: f.Name, Type: arrowType(f), Nullable: !f.Required && !f.Repeated}
}

func arrowSchema(s bq.Schema) *arrow.Schema {
	fields := make([]arrow.Field, len(s))
	for i, f := range s {
		fields[i] = arrowField(f)
	}
	return arrow.NewSchema(fields, nil)
}

// appendArrow appends v, decoded by the client for f, to b.
func appendArrow(b array.Builder, f *bq.FieldSchema, v bq.Value) error {
	if f.Repeated {
		lb := b.(*array.ListBuilder)
		lb.Append(true) // BigQuery has no NULL arrays: NULL reads as empty
		items, _ := v.([]bq.Value)
		elem := *f
		elem.Repeated = false
		for _, it := range items {
			if err := appendArrow(lb.ValueBuilder(), &elem, it); err != nil {
				return err
			}
		}
		return nil
	}
	if v == nil {
		b.AppendNull()
		return nil
	}
	switch bb := b.(type) {
	case *array.Int64Builder:
		bb.Append(v.(int64))
	case *array.Float64Builder:
		bb.Append(v.(float64))
	case *array.BooleanBuilder:
		bb.Append(v.(bool))
	case *array.BinaryBuilder:
		bb.Append(v.([]byte))
	case *array.Decimal128Builder:
		_, s, _ := decimalOf(f)
		bb.Append(decimal128.FromBigInt(unscaled(v.(*big.Rat), s)))
	case *array.Date32Builder:
		d := v.(civil.Date)
		bb.Append(arrow.Date32FromTime(time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)))
	case *array.TimestampBuilder:
		var t time.Time
		if dt, ok := v.(civil.DateTime); ok {
			t = dt.In(time.UTC)
		} else {
			t = v.(time.Time)
		}
		bb.Append(arrow.Timestamp(t.UnixMicro()))
	case *array.Time64Builder:
		c := v.(civil.Time)
		micros := (int64(c.Hour)*3600+int64(c.Minute)*60+int64(c.Second))*1_000_000 + int64(c.Nanosecond/1000)
		bb.Append(arrow.Time64(micros))
	case *array.StructBuilder:
		vals, _ := v.([]bq.Value)
		bb.Append(true)
		for i, sub := range f.Schema {
			var x bq.Value
			if i < len(vals) {
				x = vals[i]
			}
			if err := appendArrow(bb.FieldBuilder(i), sub, x); err != nil {
				return err
			}
		}
	case *array.StringBuilder:
		switch x := v.(type) {
		case string:
			bb.Append(x)
		case *big.Rat:
			bb.Append(ratString(x))
		default:
			bb.Append(textOf(x))
		}
	default:
		return fmt.Errorf("column %s: no Arrow builder for %s", f.Name, f.Type)
	}
	return nil
}
