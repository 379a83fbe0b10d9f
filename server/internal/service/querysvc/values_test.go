package querysvc

import (
	"math/big"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/stretchr/testify/require"
)

func TestValues(t *testing.T) {
	dec := func(v int64, scale uint8) duckdb.Decimal {
		return duckdb.Decimal{Width: 18, Scale: scale, Value: big.NewInt(v)}
	}
	ts := time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC)
	for _, c := range []struct {
		in   any
		typ  string
		want any
	}{
		{dec(632250, 2), "DECIMAL(18,2)", "6322.50"},
		{dec(-5, 3), "DECIMAL(18,3)", "-0.005"},
		{dec(42, 0), "DECIMAL(18,0)", "42"},
		{int64(1 << 53), "BIGINT", float64(1 << 53)},
		{int64(1<<53 + 1), "BIGINT", "9007199254740993"},
		{ts, "DATE", "2026-01-02"},
		{ts, "TIMESTAMP", "2026-01-02 03:04:05.6"},
		{nil, "INTEGER", nil},
		{true, "BOOLEAN", true},
		{duckdb.Interval{Micros: 90 * 60 * 1e6}, "INTERVAL", "01:30:00"},
		{duckdb.Interval{Months: 14, Days: 3, Micros: 1500000}, "INTERVAL", "1 year 2 months 3 days 00:00:01.5"},
		{duckdb.Interval{}, "INTERVAL", "00:00:00"},
	} {
		require.Equal(t, c.want, value(c.in, c.typ).AsInterface(), "%v %s", c.in, c.typ)
	}
}
