package querysvc

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"google.golang.org/protobuf/types/known/structpb"
)

// maxExactInt is the largest integer a JSON number carries exactly in every client
// (JavaScript's 2^53); larger integers are sent as strings.
const maxExactInt = 1 << 53

// listValue converts one result row. JSON-native values (null, bool, numbers,
// strings) stay native; everything else — dates, times, decimals, UUIDs, nested
// values — becomes its text form, as the Python API did.
func listValue(row []any, types []string) *structpb.ListValue {
	out := &structpb.ListValue{Values: make([]*structpb.Value, len(row))}
	for i, v := range row {
		typ := ""
		if i < len(types) {
			typ = types[i]
		}
		out.Values[i] = value(v, typ)
	}
	return out
}

func value(v any, typ string) *structpb.Value {
	switch x := v.(type) {
	case nil:
		return structpb.NewNullValue()
	case bool:
		return structpb.NewBoolValue(x)
	case string:
		return structpb.NewStringValue(x)
	case int8, int16, int32, uint8, uint16, uint32:
		return structpb.NewNumberValue(toFloat(x))
	case int:
		return intValue(int64(x))
	case int64:
		return intValue(x)
	case uint64:
		if x > maxExactInt {
			return structpb.NewStringValue(fmt.Sprint(x))
		}
		return structpb.NewNumberValue(float64(x))
	case float32:
		return floatValue(float64(x))
	case float64:
		return floatValue(x)
	case *big.Int:
		if x.IsInt64() {
			return intValue(x.Int64())
		}
		return structpb.NewStringValue(x.String())
	case time.Time:
		return structpb.NewStringValue(formatTime(x, typ))
	case duckdb.Decimal:
		return structpb.NewStringValue(formatDecimal(x))
	case duckdb.Interval:
		return structpb.NewStringValue(formatInterval(x.Months, x.Days, x.Micros))
	case []byte:
		if strings.EqualFold(typ, "UUID") && len(x) == 16 {
			return structpb.NewStringValue(fmt.Sprintf("%x-%x-%x-%x-%x", x[0:4], x[4:6], x[6:8], x[8:10], x[10:16]))
		}
		return structpb.NewStringValue(`\x` + hex.EncodeToString(x))
	case fmt.Stringer:
		return structpb.NewStringValue(x.String())
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return structpb.NewStringValue(fmt.Sprint(x))
		}
		return structpb.NewStringValue(string(b))
	}
}

// formatDecimal writes a decimal with exactly its scale's digits ("6322.50"), as
// DuckDB prints it; duckdb.Decimal's own String drops trailing zeros.
func formatDecimal(d duckdb.Decimal) string {
	if d.Value == nil {
		return "0"
	}
	digits := new(big.Int).Abs(d.Value).String()
	scale := int(d.Scale)
	if scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if d.Value.Sign() < 0 {
		return "-" + digits
	}
	return digits
}

// formatInterval writes an interval as DuckDB prints it: "1 year 2 months 3 days
// 04:05:06.5" (parts that are zero left out; "00:00:00" for an empty interval).
func formatInterval(months, days int32, micros int64) string {
	var parts []string
	plural := func(n int64, unit string) {
		if n == 0 {
			return
		}
		if n == 1 || n == -1 {
			parts = append(parts, fmt.Sprintf("%d %s", n, unit))
		} else {
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
		d := time.Duration(micros) * time.Microsecond
		h, m := int64(d/time.Hour), int64(d%time.Hour/time.Minute)
		sec := float64(d%time.Minute) / float64(time.Second)
		text := fmt.Sprintf("%s%02d:%02d:%02d", sign, h, m, int64(sec))
		if frac := d % time.Second; frac != 0 {
			text += strings.TrimRight(fmt.Sprintf("%.6f", float64(frac)/float64(time.Second))[1:], "0")
		}
		parts = append(parts, text)
	}
	return strings.Join(parts, " ")
}

func intValue(x int64) *structpb.Value {
	if x > maxExactInt || x < -maxExactInt {
		return structpb.NewStringValue(fmt.Sprint(x))
	}
	return structpb.NewNumberValue(float64(x))
}

// floatValue keeps NaN and infinities representable in JSON (as strings).
func floatValue(x float64) *structpb.Value {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return structpb.NewStringValue(fmt.Sprint(x))
	}
	return structpb.NewNumberValue(x)
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int8:
		return float64(x)
	case int16:
		return float64(x)
	case int32:
		return float64(x)
	case uint8:
		return float64(x)
	case uint16:
		return float64(x)
	case uint32:
		return float64(x)
	}
	return 0
}

// formatTime writes times the way DuckDB prints them for the column's type.
func formatTime(t time.Time, typ string) string {
	switch {
	case strings.EqualFold(typ, "DATE"):
		return t.Format(time.DateOnly)
	case strings.HasPrefix(strings.ToUpper(typ), "TIME") && !strings.HasPrefix(strings.ToUpper(typ), "TIMESTAMP"):
		return t.Format("15:04:05.999999")
	case strings.Contains(strings.ToUpper(typ), "WITH TIME ZONE") || strings.EqualFold(typ, "TIMESTAMPTZ"):
		return t.UTC().Format("2006-01-02 15:04:05.999999Z07:00")
	default:
		return t.UTC().Format("2006-01-02 15:04:05.999999")
	}
}
