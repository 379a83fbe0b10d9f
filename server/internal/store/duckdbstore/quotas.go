package duckdbstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/agnesdata/agnes/server/internal/store"
)

// ReserveRemoteBytes implements store.RemoteQuotas. The read and the add are
// one write transaction, serialized with every other write, so concurrent
// reservations never pass the limit together.
func (s *Store) ReserveRemoteBytes(ctx context.Context, userID string, day time.Time, bytes, limit int64) (int64, bool, error) {
	if userID == "" || bytes < 0 {
		return 0, false, op("reserve remote bytes", fmt.Errorf("a user and a byte count ≥ 0 are required"))
	}
	date := utcDate(day)
	var used int64
	var ok bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT bytes FROM remote_usage WHERE user_id = ? AND day = ?`, userID, date).Scan(&used)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if used+bytes > limit {
			return nil
		}
		ok = true
		if _, err := tx.ExecContext(ctx, `INSERT INTO remote_usage (user_id, day, bytes) VALUES (?, ?, ?)
			ON CONFLICT (user_id, day) DO UPDATE SET bytes = remote_usage.bytes + excluded.bytes`, userID, date, bytes); err != nil {
			return err
		}
		if s.quotaPruned.Swap(date) == date { // the first reservation of a day drops counts past keeping
			return nil
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM remote_usage WHERE day < ?`, utcDate(day.Add(-store.RemoteQuotaKeep)))
		return err
	})
	if err != nil {
		return 0, false, op("reserve remote bytes", err)
	}
	return used, ok, nil
}

// RefundRemoteBytes implements store.RemoteQuotas.
func (s *Store) RefundRemoteBytes(ctx context.Context, userID string, day time.Time, bytes int64) error {
	return op("refund remote bytes", s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE remote_usage SET bytes = greatest(0, bytes - ?) WHERE user_id = ? AND day = ?`,
			bytes, userID, utcDate(day))
		return err
	}))
}

// utcDate is t's UTC calendar date, as DuckDB's DATE reads it.
func utcDate(t time.Time) string { return t.UTC().Format(time.DateOnly) }
