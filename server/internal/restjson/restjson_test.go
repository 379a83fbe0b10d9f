package restjson

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUnquoteInt64(t *testing.T) {
	ints := map[string]bool{"rows": true, "size_bytes": true}
	cases := map[string]string{
		`{"rows":"12","name":"7"}`:                    `{"rows":12,"name":"7"}`,
		`{"rows": "-3", "size_bytes":  "0"}`:          `{"rows": -3, "size_bytes":  0}`,
		`{"rows":[["1","2"]],"x":{"size_bytes":"5"}}`: `{"rows":[["1","2"]],"x":{"size_bytes":5}}`,
		`{"name":"rows","v":"\"rows\":\"1\""}`:        `{"name":"rows","v":"\"rows\":\"1\""}`,
		`{"rows":"1e3"}`:                              `{"rows":"1e3"}`,
		`{"rows":""}`:                                 `{"rows":""}`,
	}
	for in, want := range cases {
		require.Equal(t, want, string(unquoteInt64([]byte(in), ints)), in)
	}
}
