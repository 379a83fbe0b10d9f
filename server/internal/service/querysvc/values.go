package querysvc

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/duckdb/duckdb-go/v2"
)

// This file is the one place that reads a result cell in the API's value
// conventions. Every wire form (JSON rows, protobuf Values) writes what it
// reads, so a value reads the same through REST, Connect, gRPC and the
// JSON stream:
//
//   - NULL is null, booleans are booleans;
//   - integers are numbers while every client reads them exactly
//     (|v| ≤ 2^53, JavaScript's limit), text beyond;
//   - floats are numbers; NaN and infinities are text ("NaN", "+Inf");
//   - decimals are text with exactly their scale's digits ("6322.50");
//   - dates, times, timestamps and intervals are text as DuckDB prints them
//     (timestamps in UTC, "Z" for a zoned type);
//   - blobs are DuckDB's \x hex text, BIT its bit string, UUID its text;
//   - lists, structs, maps, unions and JSON are their JSON text, whose
//     values follow these same conventions.

// maxExactInt is the largest integer a JSON number carries exactly in every
// client (JavaScript's 2^53).
const maxExactInt = 1 << 53

// value is one cell, read.
type value struct {
	kind kind
	n    int64   // kindInt; kindBool (0 or 1)
	f    float64 // kindFloat: finite
	// text (kindText, kindPlain) is valid until the column reads its next cell.
	text []byte
}

type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindInt
	kindFloat
	kindText
	// kindPlain is text of printable ASCII, no quote or backslash (decimals,
	// dates and times as this file writes them): valid UTF-8 and a JSON
	// string's content as it is, so the writers skip those checks.
	kindPlain
)

// cellReader reads cell i of one Arrow column. Each column has its own, used
// by one goroutine: the text it returns lives in its scratch buffer.
type cellReader func(i int) value

// newReader returns the reader of an Arrow column whose DuckDB type is typ
// ("" inside nested values, where Arrow's type decides alone): Arrow cannot
// tell HUGEINT from DECIMAL(38,0), BIT or BIGNUM from BLOB, UUID or JSON
// from VARCHAR.
func newReader(col arrow.Array, typ string) cellReader {
	read := valueReader(col, strings.ToUpper(typ))
	if col.NullN() == 0 {
		return read
	}
	return func(i int) value {
		if col.IsNull(i) {
			return value{}
		}
		return read(i)
	}
}

// valueReader reads a non-null cell.
func valueReader(col arrow.Array, typ string) cellReader {
	var scratch []byte
	text := func(b []byte) value {
		scratch = b
		return value{kind: kindText, text: b}
	}
	integer := func(v int64) value {
		if v > maxExactInt || v < -maxExactInt {
			return text(strconv.AppendInt(scratch[:0], v, 10))
		}
		return value{kind: kindInt, n: v}
	}
	bigInteger := func(v *big.Int) value {
		if v.IsInt64() {
			return integer(v.Int64())
		}
		return text(v.Append(scratch[:0], 10))
	}
	switch a := col.(type) {
	case *array.Null:
		return func(int) value { return value{} }
	case *array.Boolean:
		return func(i int) value {
			if a.Value(i) {
				return value{kind: kindBool, n: 1}
			}
			return value{kind: kindBool}
		}
	case *array.Int8:
		return func(i int) value { return value{kind: kindInt, n: int64(a.Value(i))} }
	case *array.Int16:
		return func(i int) value { return value{kind: kindInt, n: int64(a.Value(i))} }
	case *array.Int32:
		return func(i int) value { return value{kind: kindInt, n: int64(a.Value(i))} }
	case *array.Int64:
		values := a.Int64Values()
		return func(i int) value {
			if v := values[i]; v <= maxExactInt && v >= -maxExactInt {
				return value{kind: kindInt, n: v}
			}
			return integer(a.Value(i))
		}
	case *array.Uint8:
		return func(i int) value { return value{kind: kindInt, n: int64(a.Value(i))} }
	case *array.Uint16:
		return func(i int) value { return value{kind: kindInt, n: int64(a.Value(i))} }
	case *array.Uint32:
		return func(i int) value { return value{kind: kindInt, n: int64(a.Value(i))} }
	case *array.Uint64:
		return func(i int) value {
			if v := a.Value(i); v > maxExactInt {
				return text(strconv.AppendUint(scratch[:0], v, 10))
			}
			return value{kind: kindInt, n: int64(a.Value(i))}
		}
	case *array.Float32:
		return func(i int) value {
			// The float64 nearest to the float32's shortest decimal form, so
			// that 0.1 reads 0.1 in every wire form.
			f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(a.Value(i)), 'g', -1, 32), 64)
			return float(f, scratch, text)
		}
	case *array.Float64:
		return func(i int) value { return float(a.Value(i), scratch, text) }
	case *array.String:
		offsets, data := a.ValueOffsets(), a.ValueBytes()
		return func(i int) value { return value{kind: kindText, text: stringBytes(offsets, data, i)} }
	case *array.LargeString:
		return func(i int) value { return text(append(scratch[:0], a.Value(i)...)) }
	case *array.StringView:
		return func(i int) value { return text(append(scratch[:0], a.Value(i)...)) }
	case *array.Binary:
		return binaryReader(a.Value, typ, text, &scratch)
	case *array.LargeBinary:
		return binaryReader(a.Value, typ, text, &scratch)
	case *array.FixedSizeBinary:
		return binaryReader(a.Value, typ, text, &scratch)
	case *array.Decimal128:
		scale := a.DataType().(*arrow.Decimal128Type).Scale
		if scale == 0 && (typ == "HUGEINT" || typ == "UHUGEINT") {
			return func(i int) value {
				if v := a.Value(i); fitsInt64(v) {
					return integer(int64(v.LowBits()))
				}
				return bigInteger(a.Value(i).BigInt())
			}
		}
		return func(i int) value {
			if v := a.Value(i); fitsInt64(v) { // no big.Int
				scratch = appendDecimal(scratch[:0], int64(v.LowBits()), int(scale))
				return value{kind: kindPlain, text: scratch}
			}
			return text(appendBigDecimal(scratch[:0], a.Value(i).BigInt(), int(scale)))
		}
	case *array.Decimal256:
		scale := int(a.DataType().(*arrow.Decimal256Type).Scale)
		return func(i int) value { return text(appendBigDecimal(scratch[:0], a.Value(i).BigInt(), scale)) }
	case *array.Decimal64:
		scale := int(a.DataType().(*arrow.Decimal64Type).Scale)
		return func(i int) value { return text(appendDecimal(scratch[:0], int64(a.Value(i)), scale)) }
	case *array.Decimal32:
		scale := int(a.DataType().(*arrow.Decimal32Type).Scale)
		return func(i int) value { return text(appendDecimal(scratch[:0], int64(a.Value(i)), scale)) }
	case *array.Date32:
		return func(i int) value {
			scratch = appendDate(scratch[:0], int64(a.Value(i)), func() time.Time { return a.Value(i).ToTime() })
			return value{kind: kindPlain, text: scratch}
		}
	case *array.Date64:
		return func(i int) value { return text(a.Value(i).ToTime().UTC().AppendFormat(scratch[:0], time.DateOnly)) }
	case *array.Timestamp:
		tt := a.DataType().(*arrow.TimestampType)
		zone := tt.TimeZone != "" || typ == "TIMESTAMPTZ" || strings.Contains(typ, "WITH TIME ZONE")
		perMicro := map[arrow.TimeUnit]int64{arrow.Second: 1e6, arrow.Millisecond: 1e3, arrow.Microsecond: 1}[tt.Unit]
		return func(i int) value {
			if perMicro == 0 { // nanoseconds: printed to the microsecond, as DuckDB's TIMESTAMP
				return text(appendTimestamp(scratch[:0], a.Value(i).ToTime(tt.Unit).UnixMicro(), zone))
			}
			v := int64(a.Value(i))
			if v > math.MaxInt64/perMicro || v < math.MinInt64/perMicro {
				return text(append(scratch[:0], a.ValueStr(i)...))
			}
			scratch = appendTimestamp(scratch[:0], v*perMicro, zone)
			return value{kind: kindPlain, text: scratch}
		}
	case *array.Time64:
		unit := a.DataType().(*arrow.Time64Type).Unit
		return func(i int) value {
			return text(appendClock(scratch[:0], int64(time.Duration(a.Value(i))*unit.Multiplier()/time.Microsecond)))
		}
	case *array.Time32:
		unit := a.DataType().(*arrow.Time32Type).Unit
		return func(i int) value {
			return text(appendClock(scratch[:0], int64(time.Duration(a.Value(i))*unit.Multiplier()/time.Microsecond)))
		}
	case *array.MonthDayNanoInterval:
		return func(i int) value {
			v := a.Value(i)
			return text(append(scratch[:0], formatInterval(v.Months, v.Days, v.Nanoseconds/1000)...))
		}
	case *array.DayTimeInterval:
		return func(i int) value {
			v := a.Value(i)
			return text(append(scratch[:0], formatInterval(0, v.Days, int64(v.Milliseconds)*1000)...))
		}
	case *array.MonthInterval:
		return func(i int) value { return text(append(scratch[:0], formatInterval(int32(a.Value(i)), 0, 0)...)) }
	case *array.Dictionary: // ENUM
		values := newReader(a.Dictionary(), "")
		return func(i int) value { return values(a.GetValueIndex(i)) }
	case array.ListLike: // LIST, ARRAY (and MAP, which comes first below)
		if m, ok := a.(*array.Map); ok {
			return mapReader(m, text, &scratch)
		}
		items := newReader(a.ListValues(), "")
		return func(i int) value {
			start, end := a.ValueOffsets(i)
			b := append(scratch[:0], '[')
			for j := start; j < end; j++ {
				if j > start {
					b = append(b, ',')
				}
				b = appendJSON(b, items(int(j)))
			}
			return text(append(b, ']'))
		}
	case *array.Struct:
		st := a.DataType().(*arrow.StructType)
		fields := make([]cellReader, a.NumField())
		for j := range fields {
			fields[j] = newReader(a.Field(j), "")
		}
		return func(i int) value {
			b := append(scratch[:0], '{')
			for j, field := range fields {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendString(b, st.Field(j).Name)
				b = append(b, ':')
				b = appendJSON(b, field(i))
			}
			return text(append(b, '}'))
		}
	case array.Union: // its member's value
		members := make([]cellReader, a.NumFields())
		for j := range members {
			members[j] = newReader(a.Field(j), "")
		}
		dense, _ := a.(*array.DenseUnion)
		return func(i int) value {
			at := i
			if dense != nil {
				at = int(dense.ValueOffset(i))
			}
			return members[a.ChildID(i)](at)
		}
	}
	// Anything else: Arrow's text.
	return func(i int) value { return text(append(scratch[:0], col.ValueStr(i)...)) }
}

// float keeps NaN and infinities representable in JSON, as text.
func float(f float64, scratch []byte, text func([]byte) value) value {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return text(strconv.AppendFloat(scratch[:0], f, 'g', -1, 64))
	}
	return value{kind: kindFloat, f: f}
}

// stringBytes is string i of a String array, in place.
func stringBytes(offsets []int32, data []byte, i int) []byte {
	base := offsets[0]
	return data[offsets[i]-base : offsets[i+1]-base]
}

func fitsInt64(v decimal128.Num) bool {
	hi, lo := v.HighBits(), v.LowBits()
	return (hi == 0 && lo < 1<<63) || (hi == -1 && lo >= 1<<63)
}

// binaryReader reads BLOB (\x hex), BIT (its bit string), BIGNUM (an
// integer) and UUID (its text) from a binary array.
func binaryReader(get func(int) []byte, typ string, text func([]byte) value, scratch *[]byte) cellReader {
	switch typ {
	case "BIT":
		return func(i int) value { return text(append((*scratch)[:0], duckdb.Bit{Data: get(i)}.String()...)) }
	case "BIGNUM":
		return func(i int) value {
			v := bigNum(get(i))
			if v.IsInt64() && v.Int64() <= maxExactInt && v.Int64() >= -maxExactInt {
				return value{kind: kindInt, n: v.Int64()}
			}
			return text(v.Append((*scratch)[:0], 10))
		}
	case "UUID":
		return func(i int) value {
			if b := get(i); len(b) == 16 {
				return text(fmt.Appendf((*scratch)[:0], "%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
			}
			return text(appendHex((*scratch)[:0], get(i)))
		}
	}
	return func(i int) value { return text(appendHex((*scratch)[:0], get(i))) }
}

// bigNum reads DuckDB's BIGNUM encoding, which Arrow carries as is: a 3-byte
// header whose top bit is set for positive numbers, then the big-endian
// magnitude, every byte complemented for negative numbers.
func bigNum(data []byte) *big.Int {
	if len(data) < 4 {
		return new(big.Int)
	}
	if data[0]&0x80 != 0 {
		return new(big.Int).SetBytes(data[3:])
	}
	mag := make([]byte, len(data)-3)
	for j, c := range data[3:] {
		mag[j] = ^c
	}
	n := new(big.Int).SetBytes(mag)
	return n.Neg(n)
}

// mapReader reads a MAP as a JSON object: keys as their text.
func mapReader(m *array.Map, text func([]byte) value, scratch *[]byte) cellReader {
	keys, items := newReader(m.Keys(), ""), newReader(m.Items(), "")
	return func(i int) value {
		start, end := m.ValueOffsets(i)
		b := append((*scratch)[:0], '{')
		for j := start; j < end; j++ {
			if j > start {
				b = append(b, ',')
			}
			k := keys(int(j))
			if k.kind == kindText || k.kind == kindPlain {
				b = appendString(b, k.text)
			} else {
				b = appendString(b, appendJSON(nil, k))
			}
			b = append(b, ':')
			b = appendJSON(b, items(int(j)))
		}
		return text(append(b, '}'))
	}
}

const hexDigits = "0123456789abcdef"

// appendHex writes bytes as DuckDB's \x hex text.
func appendHex(buf, b []byte) []byte {
	buf = append(buf, `\x`...)
	for _, c := range b {
		buf = append(buf, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return buf
}

// appendDecimal writes an unscaled int64 with exactly scale fractional digits.
func appendDecimal(buf []byte, v int64, scale int) []byte {
	u := abs(v)
	if v < 0 {
		buf = append(buf, '-')
	}
	if scale <= 0 || scale >= len(pow10) {
		var digits [24]byte
		return appendScaled(buf, strconv.AppendUint(digits[:0], u, 10), scale)
	}
	whole, frac := u/pow10[scale], u%pow10[scale]
	buf = append(strconv.AppendUint(buf, whole, 10), '.')
	for p := pow10[scale-1]; p > frac && p > 1; p /= 10 {
		buf = append(buf, '0')
	}
	return strconv.AppendUint(buf, frac, 10)
}

// pow10[i] is 10^i.
var pow10 = [...]uint64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

func appendBigDecimal(buf []byte, v *big.Int, scale int) []byte {
	if v.Sign() < 0 {
		buf = append(buf, '-')
	}
	return appendScaled(buf, new(big.Int).Abs(v).Append(nil, 10), scale)
}

// appendScaled writes digits with a decimal point before the last scale.
func appendScaled(buf, digits []byte, scale int) []byte {
	if scale <= 0 {
		return append(buf, digits...)
	}
	if len(digits) <= scale {
		buf = append(buf, '0', '.')
		for range scale - len(digits) {
			buf = append(buf, '0')
		}
		return append(buf, digits...)
	}
	buf = append(buf, digits[:len(digits)-scale]...)
	buf = append(buf, '.')
	return append(buf, digits[len(digits)-scale:]...)
}

func abs(v int64) uint64 {
	if v < 0 {
		return uint64(-v)
	}
	return uint64(v)
}

// appendDate writes days since 1970-01-01 as YYYY-MM-DD, with Neri and
// Schneider's civil-from-days ("Euclidean affine functions and their
// application to calendar algorithms", 2022): unsigned 32-bit arithmetic,
// no division but by constants. Dates outside 0000-03-01..9999-12-31 take
// time's formatter (slow gives the time).
func appendDate(buf []byte, days int64, slow func() time.Time) []byte {
	const fromMarch0 = 719468 // days from 0000-03-01 to 1970-01-01
	if days < -fromMarch0 || days > maxDateDays {
		return slow().UTC().AppendFormat(buf, time.DateOnly)
	}
	n1 := 4*uint32(days+fromMarch0) + 3
	century, ofCentury := n1/146097, n1%146097/4
	p := 2939745 * uint64(4*ofCentury+3)
	y, ofYear := 100*century+uint32(p>>32), uint32(p)/2939745/4
	md := 2141*ofYear + 197913
	m, d := md>>16, (md&0xffff)/2141+1
	if ofYear >= 306 { // January and February count in the next year
		y, m = y+1, m-12
	}
	buf = appendPair(appendPair(buf, y/100), y%100)
	return appendPair(append(appendPair(append(buf, '-'), m), '-'), d)
}

// maxDateDays is 9999-12-31, in days since 1970-01-01.
const maxDateDays = 2932896

// appendPair writes v (0..99) as two digits.
func appendPair(buf []byte, v uint32) []byte {
	return append(buf, digitPairs[2*v], digitPairs[2*v+1])
}

const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

const microsPerDay = 86400 * 1e6

// appendTimestamp writes microseconds since the epoch as DuckDB prints a
// timestamp: "YYYY-MM-DD hh:mm:ss[.ffffff]" (trailing zeros trimmed), plus
// "Z" for a zoned type (always UTC here).
func appendTimestamp(buf []byte, micros int64, zone bool) []byte {
	days, rem := micros/microsPerDay, micros%microsPerDay
	if rem < 0 {
		days, rem = days-1, rem+microsPerDay
	}
	buf = appendDate(buf, days, func() time.Time { return time.UnixMicro(micros) })
	buf = appendClock(append(buf, ' '), rem)
	if zone {
		buf = append(buf, 'Z')
	}
	return buf
}

// appendClock writes a time of day given in microseconds as
// "hh:mm:ss[.ffffff]" (trailing zeros trimmed).
func appendClock(buf []byte, micros int64) []byte {
	if micros < 0 || micros >= 100*3600*1e6 { // not a time of day (DuckDB's TIME ends at 24:00:00): written plainly
		return fmt.Appendf(buf, "%02d:%02d:%02d.%06d", micros/3.6e9, micros/6e7%60, micros/1e6%60, micros%1e6)
	}
	u := uint64(micros)
	secs, frac := u/1e6, u%1e6
	buf = appendPair(append(appendPair(append(appendPair(buf, uint32(secs/3600)), ':'), uint32(secs/60%60)), ':'), uint32(secs%60))
	if frac == 0 {
		return buf
	}
	digits := [6]byte{}
	for k := 5; k >= 0; k-- {
		digits[k] = byte('0' + frac%10)
		frac /= 10
	}
	n := 6
	for n > 0 && digits[n-1] == '0' {
		n--
	}
	return append(append(buf, '.'), digits[:n]...)
}

// formatInterval writes an interval as DuckDB prints it: "1 year 2 months 3
// days 04:05:06.5" (parts that are zero left out; "00:00:00" for an empty
// interval).
func formatInterval(months, days int32, micros int64) string {
	var parts []string
	plural := func(n int64, unit string) {
		switch {
		case n == 0:
		case n == 1 || n == -1:
			parts = append(parts, fmt.Sprintf("%d %s", n, unit))
		default:
			parts = append(parts, fmt.Sprintf("%d %ss", n, unit))
		}
	}
	plural(int64(months/12), "year")
	plural(int64(months%12), "month")
	plural(int64(days), "day")
	if micros != 0 || len(parts) == 0 {
		sign := ""
		if micros < 0 {
			sign, micros = "-", -micros
		}
		h := micros / 3_600_000_000
		parts = append(parts, sign+fmt.Sprintf("%02d", h)+string(appendClock(nil, micros-h*3_600_000_000))[2:])
	}
	return strings.Join(parts, " ")
}
