package querysvc

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// appendString reads back as encoding/json's own encoding of the same bytes
// (invalid UTF-8 replaced byte by byte), whatever the mix of plain ASCII,
// characters to escape and multi-byte or broken UTF-8 around its eight-byte
// fast path.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	alphabet := []byte("abcXYZ019 -:.T\"\\\x00\x01\x1f\x7f/<>&\u00e9\u20ac\U0001F600\xff\xc3")
	r := rand.New(rand.NewPCG(1, 2))
	cases := []string{"", "plain ascii, longer than eight", "2026-01-01 00:00:00", "12345678\"", "1234567\\8", "\x1f2345678", "12345678\xe9"}
	for range 20000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		var got, want string
		if err := json.Unmarshal(appendString(nil, []byte(s)), &got); err != nil {
			t.Fatalf("%q: invalid JSON %q: %v", s, appendString(nil, []byte(s)), err)
		}
		ref, _ := json.Marshal(s)
		_ = json.Unmarshal(ref, &want)
		if got != want {
			t.Fatalf("%q: reads as %q, encoding/json's as %q", s, got, want)
		}
		if string(appendString(nil, s)) != string(appendString(nil, []byte(s))) {
			t.Fatalf("%q: string and []byte encodings differ", s)
		}
	}
}

func TestNeedsEscape(t *testing.T) {
	for c := range 256 {
		want := c < 0x20 || c == '"' || c == '\\' || c >= 0x80
		for pos := range 8 {
			w := uint64(0x4141414141414141) // "AAAAAAAA"
			w = w&^(0xff<<(8*pos)) | uint64(c)<<(8*pos)
			if got := needsEscape(w); got != want {
				t.Fatalf("byte %#x at %d: %v, want %v", c, pos, got, want)
			}
		}
	}
}
