package querysvc

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// The two writers of a value (values.go): as JSON, and as the protobuf
// encoding of a google.protobuf.Value.

// appendJSON writes v as JSON.
func appendJSON(buf []byte, v value) []byte {
	switch v.kind {
	case kindNull:
		return append(buf, "null"...)
	case kindBool:
		return strconv.AppendBool(buf, v.n != 0)
	case kindInt:
		return strconv.AppendInt(buf, v.n, 10)
	case kindFloat:
		return appendFloat(buf, v.f)
	case kindPlain:
		return append(append(append(buf, '"'), v.text...), '"')
	}
	return appendString(buf, v.text)
}

// appendFloat writes a finite float in JSON's number grammar, as
// encoding/json does.
func appendFloat(buf []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(buf, f, format, -1, 64)
}

// appendString writes a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced (as encoding/json does).
func appendString[S string | []byte](buf []byte, s S) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		// Eight plain ASCII bytes at a time: most text (names, codes, the
		// formatted dates and numbers) needs no escaping at all.
		if i+8 <= len(s) && !needsEscape(uint64(s[i])|uint64(s[i+1])<<8|uint64(s[i+2])<<16|uint64(s[i+3])<<24|
			uint64(s[i+4])<<32|uint64(s[i+5])<<40|uint64(s[i+6])<<48|uint64(s[i+7])<<56) {
			i += 8
			continue
		}
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
		r, size := utf8.DecodeRune([]byte(s[i:min(i+utf8.UTFMax, len(s))]))
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

// needsEscape reports whether one of the eight bytes of w is a control
// character, '"', '\\' or not ASCII (the bit tricks of "Bit Twiddling Hacks":
// a byte below n, for n ≤ 128, and a zero byte after an XOR).
func needsEscape(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	below := (w - ones*0x20) & ^w & highs
	quote := (w ^ ones*'"' - ones) & ^(w ^ ones*'"') & highs
	backslash := (w ^ ones*'\\' - ones) & ^(w ^ ones*'\\') & highs
	return below|quote|backslash|w&highs != 0
}

// google.protobuf.Value's fields (struct.proto): the oneof kind.
const (
	fieldNullValue   = 1 // NullValue enum; NULL_VALUE = 0
	fieldNumberValue = 2 // double
	fieldStringValue = 3 // string
	fieldBoolValue   = 4 // bool
)

// appendProtoCell writes v as one entry of a google.protobuf.ListValue's
// values (field 1): tag, length and the Value. A string field must be valid
// UTF-8, so invalid bytes are replaced, as JSON does.
func appendProtoCell(buf []byte, v value) []byte {
	switch v.kind {
	case kindNull:
		return append(buf, tagListValues, 2, tagNull, 0)
	case kindBool:
		return append(buf, tagListValues, 2, tagBool, byte(v.n))
	case kindInt:
		return appendDouble(append(buf, tagListValues, 9), float64(v.n))
	case kindFloat:
		return appendDouble(append(buf, tagListValues, 9), v.f)
	}
	text := v.text
	if v.kind == kindText && !utf8.Valid(text) {
		text = bytes.ToValidUTF8(text, []byte("\uFFFD"))
	}
	n := len(text)
	buf = appendVarint(append(buf, tagListValues), 1+protowire.SizeVarint(uint64(n))+n)
	return append(appendVarint(append(buf, tagString), n), text...)
}

// Tags of google.protobuf.Value's fields, as written.
var (
	tagNull   = byte(protowire.EncodeTag(fieldNullValue, protowire.VarintType))
	tagNumber = byte(protowire.EncodeTag(fieldNumberValue, protowire.Fixed64Type))
	tagString = byte(protowire.EncodeTag(fieldStringValue, protowire.BytesType))
	tagBool   = byte(protowire.EncodeTag(fieldBoolValue, protowire.VarintType))
)

func appendDouble(buf []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(append(buf, tagNumber), math.Float64bits(f))
}

// appendVarint is protowire.AppendVarint, with the one-byte case inline.
func appendVarint(buf []byte, n int) []byte {
	if n < 0x80 {
		return append(buf, byte(n))
	}
	return protowire.AppendVarint(buf, uint64(n))
}
