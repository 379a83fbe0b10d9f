package duckdbstore

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRemoteQuotaPruning: a day's first reservation drops counts older than
// store.RemoteQuotaKeep, and keeps the month before.
func TestRemoteQuotaPruning(t *testing.T) {
	s, err := Open(t.Context(), ":memory:")
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	today := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	old, recent := today.AddDate(0, 0, -40), today.AddDate(0, 0, -30)
	for _, day := range []time.Time{old, recent} {
		_, ok, err := s.ReserveRemoteBytes(t.Context(), "ann", day, 70, 100)
		require.NoError(t, err)
		require.True(t, ok)
	}
	_, ok, err := s.ReserveRemoteBytes(t.Context(), "ann", today, 1, 100)
	require.NoError(t, err)
	require.True(t, ok)

	rows, err := s.db.QueryContext(t.Context(), `SELECT day FROM remote_usage WHERE user_id = 'ann' ORDER BY day`)
	days, err := collect(rows, err, func(r scanner) (time.Time, error) {
		var d time.Time
		return d, r.Scan(&d)
	})
	require.NoError(t, err)
	require.Len(t, days, 2, "the count of 40 days ago is gone, 30 days ago kept: %v", days)
	require.True(t, days[0].Equal(time.Date(2026, 2, 13, 0, 0, 0, 0, time.UTC)), "%v", days[0])
}
