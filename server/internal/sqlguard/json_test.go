package sqlguard

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeJSON(t *testing.T) {
	v, err := decodeJSON([]byte(` {"b": [1, -2.5e3, true, false, null, {}], "a": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\ud800", "": []} `))
	require.NoError(t, err)
	assert.Equal(t, object{
		{"b", []any{nil, nil, true, false, nil, object{}}},
		{"a", "x\"\\/\b\f\n\r\té😀\ufffd"},
		{"", []any{}},
	}, v)

	for _, bad := range []string{``, `{`, `{"a"}`, `{"a":1,}`, `[1 2]`, `"\x"`, "\"\x01\"", `tru`, `{} {}`, `-`, `"\u12"`} {
		_, err := decodeJSON([]byte(bad))
		assert.Error(t, err, bad)
	}
	deep := make([]byte, 0, 2*maxDepth+2)
	for range maxDepth + 1 {
		deep = append(deep, '[')
	}
	_, err = decodeJSON(deep)
	assert.ErrorIs(t, err, errTooDeep)
}

// FuzzDecodeJSON: whatever encoding/json accepts, decodeJSON decodes to the
// same strings, booleans and shape.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `[1,"\u00e9",{"k":[true,null]}]`, `"\ud83d\ude00"`, `{"error":false,"statements":[]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want any
		if !utf8.Valid(data) || json.Unmarshal(data, &want) != nil {
			return
		}
		got, err := decodeJSON(data)
		require.NoError(t, err)
		assert.Equal(t, normalize(want), normalize(got))
	})
}

// normalize maps both decoders' output to one shape: objects become maps
// (last duplicate wins, as in encoding/json), numbers become nil.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, e := range x {
			m[k] = normalize(e)
		}
		return m
	case object:
		m := map[string]any{}
		for _, f := range x {
			m[f.key] = normalize(f.value)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case float64:
		return nil
	default:
		return v
	}
}
