package querysvc

import (
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// rowEncoder writes rows of one record batch as JSON arrays, with the same
// conventions as listValue (numbers native up to 2^53, decimals with their scale,
// dates and times as DuckDB prints them, anything nested as its text), straight from
// the Arrow columns: each column's encoder is chosen once per batch, so a value costs
// no type switch, no intermediate Go value, no protobuf and no reflection.
type rowEncoder struct {
	cols []func(buf []byte, i int) []byte
}

func newRowEncoder(rec arrow.RecordBatch, types []string) *rowEncoder {
	e := &rowEncoder{cols: make([]func([]byte, int) []byte, rec.NumCols())}
	for c := range e.cols {
		typ := ""
		if c < len(types) {
			typ = types[c]
		}
		e.cols[c] = columnEncoder(rec.Column(c), typ)
	}
	return e
}

func (e *rowEncoder) appendRow(buf []byte, i int) []byte {
	buf = append(buf, '[')
	for c, enc := range e.cols {
		if c > 0 {
			buf = append(buf, ',')
		}
		buf = enc(buf, i)
	}
	return append(buf, ']')
}

// nullable wraps a value encoder with the null check.
func nullable(col arrow.Array, enc func(buf []byte, i int) []byte) func([]byte, int) []byte {
	if col.NullN() == 0 {
		return enc
	}
	return func(buf []byte, i int) []byte {
		if col.IsNull(i) {
			return append(buf, "null"...)
		}
		return enc(buf, i)
	}
}

// timeLayout is how DuckDB prints a time type.
func timeLayout(typ string) string {
	upper := strings.ToUpper(typ)
	switch {
	case upper == "DATE":
		return time.DateOnly
	case strings.HasPrefix(upper, "TIME") && !strings.HasPrefix(upper, "TIMESTAMP"):
		return "15:04:05.999999"
	case strings.Contains(upper, "WITH TIME ZONE") || upper == "TIMESTAMPTZ":
		return "2006-01-02 15:04:05.999999Z07:00"
	}
	return "2006-01-02 15:04:05.999999"
}

func columnEncoder(col arrow.Array, typ string) func([]byte, int) []byte {
	switch a := col.(type) {
	case *array.Boolean:
		return nullable(col, func(buf []byte, i int) []byte { return strconv.AppendBool(buf, a.Value(i)) })
	case *array.Int8:
		return nullable(col, func(buf []byte, i int) []byte { return strconv.AppendInt(buf, int64(a.Value(i)), 10) })
	case *array.Int16:
		return nullable(col, func(buf []byte, i int) []byte { return strconv.AppendInt(buf, int64(a.Value(i)), 10) })
	case *array.Int32:
		return nullable(col, func(buf []byte, i int) []byte { return strconv.AppendInt(buf, int64(a.Value(i)), 10) })
	case *array.Int64:
		return nullable(col, func(buf []byte, i int) []byte { return appendInt(buf, a.Value(i)) })
	case *array.Uint8:
		return nullable(col, func(buf []byte, i int) []byte { return strconv.AppendUint(buf, uint64(a.Value(i)), 10) })
	case *array.Uint16:
		return nullable(col, func(buf []byte, i int) []byte { return strconv.AppendUint(buf, uint64(a.Value(i)), 10) })
	case *array.Uint32:
		return nullable(col, func(buf []byte, i int) []byte { return strconv.AppendUint(buf, uint64(a.Value(i)), 10) })
	case *array.Uint64:
		return nullable(col, func(buf []byte, i int) []byte {
			if v := a.Value(i); v > maxExactInt {
				return appendString(buf, strconv.FormatUint(v, 10))
			}
			return strconv.AppendUint(buf, a.Value(i), 10)
		})
	case *array.Float32:
		return nullable(col, func(buf []byte, i int) []byte { return appendFloat(buf, float64(a.Value(i)), 32) })
	case *array.Float64:
		return nullable(col, func(buf []byte, i int) []byte { return appendFloat(buf, a.Value(i), 64) })
	case *array.String:
		return nullable(col, func(buf []byte, i int) []byte { return appendString(buf, a.Value(i)) })
	case *array.LargeString:
		return nullable(col, func(buf []byte, i int) []byte { return appendString(buf, a.Value(i)) })
	case *array.StringView:
		return nullable(col, func(buf []byte, i int) []byte { return appendString(buf, a.Value(i)) })
	case *array.Binary:
		return nullable(col, func(buf []byte, i int) []byte { return appendBlob(buf, a.Value(i)) })
	case *array.LargeBinary:
		return nullable(col, func(buf []byte, i int) []byte { return appendBlob(buf, a.Value(i)) })
	case *array.Decimal128:
		scale := a.DataType().(*arrow.Decimal128Type).Scale
		return nullable(col, func(buf []byte, i int) []byte {
			v := a.Value(i)
			hi, lo := v.HighBits(), v.LowBits()
			if (hi == 0 && lo < 1<<63) || (hi == -1 && lo >= 1<<63) { // fits an int64: no big.Int
				return appendDecimal(buf, int64(lo), int(scale))
			}
			return appendString(buf, scaled(v.BigInt(), scale))
		})
	case *array.Date32:
		return nullable(col, func(buf []byte, i int) []byte {
			buf = append(buf, '"')
			return append(appendDate(buf, int64(a.Value(i)), a.Value(i).ToTime()), '"')
		})
	case *array.Timestamp:
		unit, layout := a.DataType().(*arrow.TimestampType).Unit, timeLayout(typ)
		zone := strings.HasSuffix(layout, "Z07:00")
		perMicro := map[arrow.TimeUnit]int64{arrow.Second: -1e6, arrow.Millisecond: -1e3, arrow.Microsecond: 1}[unit]
		return nullable(col, func(buf []byte, i int) []byte {
			v := int64(a.Value(i))
			if perMicro == 0 { // nanoseconds: keep the general path
				return appendTime(buf, a.Value(i).ToTime(unit), layout)
			}
			if perMicro < 0 {
				v *= -perMicro
			}
			return appendTimestamp(buf, v, zone, func() time.Time { return a.Value(i).ToTime(unit) }, layout)
		})
	case *array.Time64:
		unit := a.DataType().(*arrow.Time64Type).Unit
		return nullable(col, func(buf []byte, i int) []byte { return appendTime(buf, a.Value(i).ToTime(unit), "15:04:05.999999") })
	case *array.MonthDayNanoInterval:
		return nullable(col, func(buf []byte, i int) []byte {
			v := a.Value(i)
			return appendString(buf, formatInterval(v.Months, v.Days, v.Nanoseconds/1000))
		})
	}
	// Nested and rare types: their text, as listValue does.
	return nullable(col, func(buf []byte, i int) []byte {
		v := col.GetOneForMarshal(i)
		if s, ok := v.(string); ok {
			return appendString(buf, s)
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return appendString(buf, col.ValueStr(i))
		}
		return appendString(buf, string(raw))
	})
}

// appendDate writes days since 1970-01-01 as YYYY-MM-DD (civil-from-days, as in
// Howard Hinnant's date algorithms); years outside 0..9999 take time's formatter.
func appendDate(buf []byte, days int64, t time.Time) []byte {
	z := days + 719468
	era := z
	if era < 0 {
		era -= 146096
	}
	era /= 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	if y < 0 || y > 9999 {
		return t.UTC().AppendFormat(buf, time.DateOnly)
	}
	return append(buf, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10))
}

// appendTimestamp writes microseconds since the epoch as DuckDB prints a
// timestamp: "YYYY-MM-DD hh:mm:ss[.ffffff]" (trailing zeros trimmed), plus "Z" for
// a zoned type (always UTC here). slow gives the time for years out of range.
func appendTimestamp(buf []byte, micros int64, zone bool, slow func() time.Time, layout string) []byte {
	const perDay = 86400 * 1e6
	days, rem := micros/perDay, micros%perDay
	if rem < 0 {
		days, rem = days-1, rem+perDay
	}
	start := len(buf)
	buf = append(buf, '"')
	buf = appendDate(buf, days, time.Time{})
	if len(buf)-start != 11 { // the date took the slow path: format the whole time that way
		return appendTime(buf[:start], slow(), layout)
	}
	secs, frac := rem/1e6, rem%1e6
	h, mi, sec := secs/3600, secs/60%60, secs%60
	buf = append(buf, ' ', byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+sec/10), byte('0'+sec%10))
	if frac != 0 {
		digits := [6]byte{}
		for k := 5; k >= 0; k-- {
			digits[k] = byte('0' + frac%10)
			frac /= 10
		}
		n := 6
		for n > 0 && digits[n-1] == '0' {
			n--
		}
		buf = append(buf, '.')
		buf = append(buf, digits[:n]...)
	}
	if zone {
		buf = append(buf, 'Z')
	}
	return append(buf, '"')
}

// appendTime writes a quoted time in UTC; layouts hold nothing JSON must escape.
func appendTime(buf []byte, t time.Time, layout string) []byte {
	buf = append(buf, '"')
	buf = t.UTC().AppendFormat(buf, layout)
	return append(buf, '"')
}

// appendBlob writes bytes as DuckDB's \x hex text, as listValue does.
func appendBlob(buf []byte, b []byte) []byte {
	buf = append(buf, `"\\x`...)
	for _, c := range b {
		buf = append(buf, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return append(buf, '"')
}

func appendInt(buf []byte, v int64) []byte {
	if v > maxExactInt || v < -maxExactInt {
		return appendString(buf, strconv.FormatInt(v, 10))
	}
	return strconv.AppendInt(buf, v, 10)
}

func appendFloat(buf []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendString(buf, strconv.FormatFloat(f, 'g', -1, bits))
	}
	// JSON's number grammar, as encoding/json writes floats.
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(buf, f, format, -1, bits)
}

// appendDecimal writes an unscaled int64 with exactly scale fractional digits, quoted.
func appendDecimal(buf []byte, v int64, scale int) []byte {
	var digits [24]byte
	d := strconv.AppendUint(digits[:0], uint64(abs(v)), 10)
	buf = append(buf, '"')
	if v < 0 {
		buf = append(buf, '-')
	}
	if scale <= 0 {
		buf = append(buf, d...)
		return append(buf, '"')
	}
	if len(d) <= scale {
		buf = append(buf, '0', '.')
		for range scale - len(d) {
			buf = append(buf, '0')
		}
		buf = append(buf, d...)
		return append(buf, '"')
	}
	buf = append(buf, d[:len(d)-scale]...)
	buf = append(buf, '.')
	buf = append(buf, d[len(d)-scale:]...)
	return append(buf, '"')
}

func abs(v int64) uint64 {
	if v < 0 {
		return uint64(-v)
	}
	return uint64(v)
}

// scaled writes an unscaled decimal with exactly scale fractional digits.
func scaled(v *big.Int, scale int32) string {
	digits := new(big.Int).Abs(v).String()
	if scale > 0 {
		for len(digits) <= int(scale) {
			digits = "0" + digits
		}
		digits = digits[:len(digits)-int(scale)] + "." + digits[len(digits)-int(scale):]
	}
	if v.Sign() < 0 {
		return "-" + digits
	}
	return digits
}

const hexDigits = "0123456789abcdef"

// appendString writes a JSON string: quotes, backslashes and control characters
// escaped, invalid UTF-8 replaced (as encoding/json does).
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
