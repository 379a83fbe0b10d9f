package schedule

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for _, ok := range []string{"", "every 15m", "every 1h", "EVERY 2H", "daily 06:00", "daily 06:00, 18:30"} {
		_, err := Parse(ok)
		require.NoError(t, err, ok)
	}
	for _, bad := range []string{"every", "every 0m", "every 5", "every 5d", "every -1h", "daily", "daily 25:00", "daily 6", "hourly", "every 1.5h"} {
		_, err := Parse(bad)
		require.Error(t, err, bad)
	}
}

func TestDue(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return v
	}
	every, _ := Parse("every 30m")
	require.True(t, every.Due(time.Time{}, at("2026-01-01T00:00:00Z")), "never synced: due")
	require.False(t, every.Due(at("2026-01-01T10:00:00Z"), at("2026-01-01T10:29:59Z")))
	require.True(t, every.Due(at("2026-01-01T10:00:00Z"), at("2026-01-01T10:30:00Z")))

	daily, _ := Parse("daily 18:30,06:00")
	require.Equal(t, at("2026-01-01T18:30:00Z"), daily.Next(at("2026-01-01T07:00:00Z")))
	require.Equal(t, at("2026-01-02T06:00:00Z"), daily.Next(at("2026-01-01T18:30:00Z")))
	require.False(t, daily.Due(at("2026-01-01T07:00:00Z"), at("2026-01-01T18:29:00Z")))
	require.True(t, daily.Due(at("2026-01-01T07:00:00Z"), at("2026-01-01T18:30:00Z")))

	var none Schedule
	require.False(t, none.Due(time.Time{}, at("2030-01-01T00:00:00Z")), "on demand: never due")
}
