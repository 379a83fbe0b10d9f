package querysvc

import (
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// appendRow appends row i of rec as a JSON array, with the same conventions as
// listValue (numbers native up to 2^53, decimals with their scale, dates and times as
// DuckDB prints them, anything nested as its text) but written straight from the
// Arrow columns: no intermediate Go values, no protobuf, no reflection.
func appendRow(buf []byte, rec arrow.RecordBatch, i int, types []string) []byte {
	buf = append(buf, '[')
	for c := range int(rec.NumCols()) {
		if c > 0 {
			buf = append(buf, ',')
		}
		typ := ""
		if c < len(types) {
			typ = types[c]
		}
		buf = appendValue(buf, rec.Column(c), i, typ)
	}
	return append(buf, ']')
}

func appendValue(buf []byte, col arrow.Array, i int, typ string) []byte {
	if col.IsNull(i) {
		return append(buf, "null"...)
	}
	switch a := col.(type) {
	case *array.Boolean:
		return strconv.AppendBool(buf, a.Value(i))
	case *array.Int8:
		return strconv.AppendInt(buf, int64(a.Value(i)), 10)
	case *array.Int16:
		return strconv.AppendInt(buf, int64(a.Value(i)), 10)
	case *array.Int32:
		return strconv.AppendInt(buf, int64(a.Value(i)), 10)
	case *array.Int64:
		return appendInt(buf, a.Value(i))
	case *array.Uint8:
		return strconv.AppendUint(buf, uint64(a.Value(i)), 10)
	case *array.Uint16:
		return strconv.AppendUint(buf, uint64(a.Value(i)), 10)
	case *array.Uint32:
		return strconv.AppendUint(buf, uint64(a.Value(i)), 10)
	case *array.Uint64:
		if v := a.Value(i); v > maxExactInt {
			return appendString(buf, strconv.FormatUint(v, 10))
		}
		return strconv.AppendUint(buf, a.Value(i), 10)
	case *array.Float32:
		return appendFloat(buf, float64(a.Value(i)), 32)
	case *array.Float64:
		return appendFloat(buf, a.Value(i), 64)
	case *array.String:
		return appendString(buf, a.Value(i))
	case *array.LargeString:
		return appendString(buf, a.Value(i))
	case *array.StringView:
		return appendString(buf, a.Value(i))
	case *array.MonthDayNanoInterval:
		v := a.Value(i)
		return appendString(buf, formatInterval(v.Months, v.Days, v.Nanoseconds/1000))
	case *array.Binary:
		return appendBlob(buf, a.Value(i))
	case *array.LargeBinary:
		return appendBlob(buf, a.Value(i))
	case *array.Decimal128:
		dt := a.DataType().(*arrow.Decimal128Type)
		return appendString(buf, scaled(a.Value(i).BigInt(), dt.Scale))
	case *array.Date32:
		return appendString(buf, a.Value(i).ToTime().Format(time.DateOnly))
	case *array.Timestamp:
		dt := a.DataType().(*arrow.TimestampType)
		t := a.Value(i).ToTime(dt.Unit)
		return appendString(buf, formatTime(t, typ))
	case *array.Time64:
		dt := a.DataType().(*arrow.Time64Type)
		return appendString(buf, a.Value(i).ToTime(dt.Unit).Format("15:04:05.999999"))
	}
	// Nested and rare types: their text, as listValue does.
	v := col.GetOneForMarshal(i)
	if s, ok := v.(string); ok {
		return appendString(buf, s)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return appendString(buf, col.ValueStr(i))
	}
	return appendString(buf, string(raw))
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
