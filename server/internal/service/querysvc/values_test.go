package querysvc

import (
	"encoding/json"
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// column builds a one-column Arrow array.
func column[B array.Builder](t *testing.T, b B, fill func(B)) arrow.Array {
	t.Helper()
	fill(b)
	a := b.NewArray()
	t.Cleanup(a.Release)
	return a
}

// TestValueConventions pins how each kind of cell reads (and so how every
// wire form writes it).
func TestValueConventions(t *testing.T) {
	mem := memory.DefaultAllocator
	ts := func(s string) arrow.Timestamp {
		v, err := time.Parse("2006-01-02 15:04:05.999999", s)
		if err != nil {
			t.Fatal(err)
		}
		return arrow.Timestamp(v.UnixMicro())
	}
	big := decimal128.FromI64(1)
	for range 70 {
		big = big.Mul(decimal128.FromI64(2))
	}
	for _, c := range []struct {
		name string
		col  arrow.Array
		typ  string
		want []string // JSON of each cell
	}{
		{"ints", column(t, array.NewInt64Builder(mem), func(b *array.Int64Builder) {
			b.AppendValues([]int64{0, -7, 1 << 53, 1<<53 + 1, -(1<<53 + 1)}, nil)
			b.AppendNull()
		}), "BIGINT", []string{`0`, `-7`, `9007199254740992`, `"9007199254740993"`, `"-9007199254740993"`, `null`}},
		{"uint64", column(t, array.NewUint64Builder(mem), func(b *array.Uint64Builder) {
			b.AppendValues([]uint64{42, math.MaxUint64}, nil)
		}), "UBIGINT", []string{`42`, `"18446744073709551615"`}},
		{"doubles", column(t, array.NewFloat64Builder(mem), func(b *array.Float64Builder) {
			b.AppendValues([]float64{2.5, 1e-9, math.NaN(), math.Inf(1), math.Inf(-1), 1e21}, nil)
		}), "DOUBLE", []string{`2.5`, `1e-09`, `"NaN"`, `"+Inf"`, `"-Inf"`, `1e+21`}},
		{"float", column(t, array.NewFloat32Builder(mem), func(b *array.Float32Builder) {
			b.AppendValues([]float32{0.1, 1.25}, nil)
		}), "FLOAT", []string{`0.1`, `1.25`}},
		{"bool", column(t, array.NewBooleanBuilder(mem), func(b *array.BooleanBuilder) {
			b.AppendValues([]bool{true, false}, nil)
		}), "BOOLEAN", []string{`true`, `false`}},
		{"strings", column(t, array.NewStringBuilder(mem), func(b *array.StringBuilder) {
			b.AppendValues([]string{"a\"b\\c\n", "ünï", ""}, nil)
			b.AppendNull()
			b.Append("\xff")
		}), "VARCHAR", []string{`"a\"b\\c\n"`, `"ünï"`, `""`, `null`, `"\ufffd"`}},
		{"decimal", column(t, array.NewDecimal128Builder(mem, &arrow.Decimal128Type{Precision: 18, Scale: 2}), func(b *array.Decimal128Builder) {
			b.AppendValues([]decimal128.Num{decimal128.FromI64(632250), decimal128.FromI64(-5), decimal128.FromI64(0), big}, nil)
		}), "DECIMAL(18,2)", []string{`"6322.50"`, `"-0.05"`, `"0.00"`, `"11805916207174113034.24"`}},
		{"hugeint", column(t, array.NewDecimal128Builder(mem, &arrow.Decimal128Type{Precision: 38, Scale: 0}), func(b *array.Decimal128Builder) {
			b.AppendValues([]decimal128.Num{decimal128.FromI64(3), big}, nil)
		}), "HUGEINT", []string{`3`, `"1180591620717411303424"`}},
		{"decimal scale 0", column(t, array.NewDecimal128Builder(mem, &arrow.Decimal128Type{Precision: 38, Scale: 0}), func(b *array.Decimal128Builder) {
			b.Append(decimal128.FromI64(3))
		}), "DECIMAL(38,0)", []string{`"3"`}},
		{"date", column(t, array.NewDate32Builder(mem), func(b *array.Date32Builder) {
			b.AppendValues([]arrow.Date32{arrow.Date32FromTime(time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)), 0, -1}, nil)
		}), "DATE", []string{`"2026-03-04"`, `"1970-01-01"`, `"1969-12-31"`}},
		{"timestamp", column(t, array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Microsecond}), func(b *array.TimestampBuilder) {
			b.AppendValues([]arrow.Timestamp{ts("2026-03-04 05:06:07.5"), ts("1969-12-31 23:59:59.000001"), ts("2026-01-01 00:00:00")}, nil)
		}), "TIMESTAMP", []string{`"2026-03-04 05:06:07.5"`, `"1969-12-31 23:59:59.000001"`, `"2026-01-01 00:00:00"`}},
		{"timestamptz", column(t, array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}), func(b *array.TimestampBuilder) {
			b.Append(ts("2026-03-04 05:06:07"))
		}), "TIMESTAMP WITH TIME ZONE", []string{`"2026-03-04 05:06:07Z"`}},
		{"timestamp seconds", column(t, array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Second}), func(b *array.TimestampBuilder) {
			b.Append(arrow.Timestamp(86400 + 61))
		}), "TIMESTAMP_S", []string{`"1970-01-02 00:01:01"`}},
		{"time", column(t, array.NewTime64Builder(mem, &arrow.Time64Type{Unit: arrow.Microsecond}), func(b *array.Time64Builder) {
			b.AppendValues([]arrow.Time64{arrow.Time64((1*3600 + 2*60 + 3) * 1e6), 500}, nil)
		}), "TIME", []string{`"01:02:03"`, `"00:00:00.0005"`}},
		{"interval", column(t, array.NewMonthDayNanoIntervalBuilder(mem), func(b *array.MonthDayNanoIntervalBuilder) {
			b.AppendValues([]arrow.MonthDayNanoInterval{{Nanoseconds: 90 * 60 * 1e9}, {Months: 14, Days: 3, Nanoseconds: 1.5e9}, {}}, nil)
		}), "INTERVAL", []string{`"01:30:00"`, `"1 year 2 months 3 days 00:00:01.5"`, `"00:00:00"`}},
		{"blob", column(t, array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary), func(b *array.BinaryBuilder) {
			b.Append([]byte{0xaa, 0x01})
		}), "BLOB", []string{`"\\xaa01"`}},
		{"uuid bytes", column(t, array.NewFixedSizeBinaryBuilder(mem, &arrow.FixedSizeBinaryType{ByteWidth: 16}), func(b *array.FixedSizeBinaryBuilder) {
			b.Append([]byte{0xe7, 0xa0, 0xd1, 0xb4, 0x1c, 0x8e, 0x4f, 0x36, 0x9d, 0x51, 0x0a, 0x7b, 0x3f, 0x2c, 0x4d, 0x5e})
		}), "UUID", []string{`"e7a0d1b4-1c8e-4f36-9d51-0a7b3f2c4d5e"`}},
		{"bignum", column(t, array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary), func(b *array.BinaryBuilder) {
			b.Append([]byte{0x80, 0, 1, 42})             // 42
			b.Append([]byte{0x7f, 0xff, 0xfe, ^byte(5)}) // -5
		}), "BIGNUM", []string{`42`, `-5`}},
		{"list", column(t, array.NewListBuilder(mem, arrow.PrimitiveTypes.Int32), func(b *array.ListBuilder) {
			b.Append(true)
			b.ValueBuilder().(*array.Int32Builder).AppendValues([]int32{1, 2}, nil)
			b.ValueBuilder().(*array.Int32Builder).AppendNull()
			b.Append(true)
		}), "INTEGER[]", []string{`"[1,2,null]"`, `"[]"`}},
		{"struct", column(t, array.NewStructBuilder(mem, arrow.StructOf(
			arrow.Field{Name: "k", Type: arrow.BinaryTypes.String}, arrow.Field{Name: "d", Type: arrow.FixedWidthTypes.Date32})), func(b *array.StructBuilder) {
			b.Append(true)
			b.FieldBuilder(0).(*array.StringBuilder).Append("v")
			b.FieldBuilder(1).(*array.Date32Builder).Append(0)
		}), `STRUCT(k VARCHAR, d DATE)`, []string{`"{\"k\":\"v\",\"d\":\"1970-01-01\"}"`}},
		{"map", column(t, array.NewMapBuilder(mem, arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int64, false), func(b *array.MapBuilder) {
			b.Append(true)
			b.KeyBuilder().(*array.StringBuilder).Append("a")
			b.ItemBuilder().(*array.Int64Builder).Append(1)
		}), "MAP(VARCHAR, BIGINT)", []string{`"{\"a\":1}"`}},
		{"map with date keys", column(t, array.NewMapBuilder(mem, arrow.FixedWidthTypes.Date32, arrow.PrimitiveTypes.Int64, false), func(b *array.MapBuilder) {
			b.Append(true)
			b.KeyBuilder().(*array.Date32Builder).Append(0)
			b.ItemBuilder().(*array.Int64Builder).Append(1)
		}), "MAP(DATE, BIGINT)", []string{`"{\"1970-01-01\":1}"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			read := newReader(c.col, c.typ)
			for i, want := range c.want {
				v := read(i)
				if got := string(appendJSON(nil, v)); got != want {
					t.Errorf("cell %d: JSON %s, want %s", i, got, want)
				}
				checkProto(t, v)
			}
		})
	}
}

// checkProto: the protobuf writer's Value is the one proto.Marshal writes
// for the value the JSON writer wrote.
func checkProto(t *testing.T, v value) {
	t.Helper()
	if v.kind == kindPlain {
		for _, c := range v.text {
			if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
				t.Fatalf("plain text %q holds %q", v.text, c)
			}
		}
	}
	var decoded any
	if err := json.Unmarshal(appendJSON(nil, v), &decoded); err != nil {
		t.Fatal(err)
	}
	want, err := structpb.NewValue(decoded)
	if err != nil {
		t.Fatal(err)
	}
	got := &structpb.ListValue{}
	if err := proto.Unmarshal(appendProtoCell(nil, v), got); err != nil || len(got.GetValues()) != 1 {
		t.Fatalf("protobuf cell does not decode to one Value: %v, %v", got, err)
	}
	if !proto.Equal(got.GetValues()[0], want) {
		t.Errorf("protobuf %v, JSON %v", got.GetValues()[0], want)
	}
}

func TestFastTimeFormatsMatchTime(t *testing.T) {
	for _, ts := range []time.Time{
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 4, 5, 6, 7, 500000000, time.UTC),
		time.Date(2000, 2, 29, 23, 59, 59, 123456000, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 1000, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(1600, 3, 1, 12, 0, 0, 0, time.UTC),
	} {
		want := ts.Format("2006-01-02 15:04:05.999999")
		if got := string(appendTimestamp(nil, ts.UnixMicro(), false)); got != want {
			t.Errorf("%v: got %s, want %s", ts, got, want)
		}
		if got := string(appendTimestamp(nil, ts.UnixMicro(), true)); got != want+"Z" {
			t.Errorf("%v zoned: got %s, want %sZ", ts, got, want)
		}
	}
	for days := int64(-800000); days < 3000000; days += 997 {
		ts := time.Unix(days*86400, 0).UTC()
		if got, want := string(appendDate(nil, days, func() time.Time { return ts })), ts.Format(time.DateOnly); got != want {
			t.Fatalf("day %d: got %s, want %s", days, got, want)
		}
	}
}

// Every day DuckDB prints as YYYY-MM-DD, each as time prints it.
func TestAppendDateEveryDay(t *testing.T) {
	first := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix() / 86400
	last := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).Unix() / 86400
	var buf []byte
	for days := first - 2; days <= last+2; days++ {
		ts := time.Unix(days*86400, 0).UTC()
		buf = appendDate(buf[:0], days, func() time.Time { return ts })
		if want := ts.Format(time.DateOnly); string(buf) != want {
			t.Fatalf("day %d: got %s, want %s", days, buf, want)
		}
	}
}

// Decimals are written as big.Int and a decimal point would write them.
func TestAppendDecimal(t *testing.T) {
	values := []int64{0, 1, -1, 5, 9, 10, 99, 100, 101, 1234, -1234, 100000, 7000000001, math.MaxInt64, math.MinInt64 + 1, -5}
	for scale := range 20 {
		for _, v := range values {
			want := string(appendBigDecimal(nil, big.NewInt(v), scale))
			if got := string(appendDecimal(nil, v, scale)); got != want {
				t.Errorf("%d scale %d: got %s, want %s", v, scale, got, want)
			}
		}
	}
}

func TestAppendClock(t *testing.T) {
	for _, c := range []struct {
		micros int64
		want   string
	}{{0, "00:00:00"}, {1, "00:00:00.000001"}, {86_400_000_000, "24:00:00"}, {45_296_500_000, "12:34:56.5"}, {3_599_999_999, "00:59:59.999999"}} {
		if got := string(appendClock(nil, c.micros)); got != c.want {
			t.Errorf("%d: got %s, want %s", c.micros, got, c.want)
		}
	}
}
