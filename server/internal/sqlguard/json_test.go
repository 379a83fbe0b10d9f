package sqlguard

import (
	"database/sql"
	"encoding/json"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeJSON(t *testing.T) {
	v, err := decodeJSON([]byte(` {"b": [1, -2.5e3, true, false, null, {}], "a": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\ud800", "": []} `))
	require.NoError(t, err)
	assert.Equal(t, object{
		{"b", []any{number("1"), number("-2.5e3"), true, false, nil, object{}}},
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
// (last duplicate wins, as in encoding/json), numbers become float64.
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
	case number:
		f, _ := strconv.ParseFloat(string(x), 64)
		return f
	default:
		return v
	}
}

// BenchmarkDecodeAndWalk isolates the Go side of Check (BenchmarkCheck
// includes the DuckDB call, which dominates).
func BenchmarkDecodeAndWalk(b *testing.B) {
	db, err := sql.Open("duckdb", "")
	require.NoError(b, err)
	defer db.Close()
	var raw []byte
	require.NoError(b, db.QueryRow(serializeSQL, `SELECT p.category, sum(oi.quantity * oi.unit_price) AS revenue
		FROM orders o JOIN order_items oi ON oi.order_id = o.id JOIN products p ON p.id = oi.product_id
		WHERE o.status = 'paid' GROUP BY ALL ORDER BY revenue DESC LIMIT 20`).Scan(&raw))
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		v, err := decodeJSON(raw)
		if err != nil {
			b.Fatal(err)
		}
		w := walker{cat: anyView{}, tables: map[string]struct{}{}}
		if err := w.value(v.(object).get("statements").([]any)[0], nil); err != nil {
			b.Fatal(err)
		}
	}
}

type anyView struct{}

func (anyView) View(name string) (string, bool) { return name, true }
