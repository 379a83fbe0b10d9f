package duckdbstore

import (
	"context"
	"database/sql"

	"github.com/google/uuid"

	"github.com/agnesdata/agnes/server/internal/store"
)

// AddHistory implements store.SyncStates.
func (s *Store) AddHistory(ctx context.Context, entries []store.HistoryEntry) error {
	return op("add sync history", s.write(ctx, func(tx *sql.Tx) error {
		for _, e := range entries {
			if _, err := tx.ExecContext(ctx, `INSERT INTO sync_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				uuid.NewString(), e.JobID, e.TableID, e.Started, e.Finished, e.Status, e.Rows, e.SizeBytes, e.Error); err != nil {
				return err
			}
		}
		return nil
	}))
}

// SaveProfile implements store.Profiles.
func (s *Store) SaveProfile(ctx context.Context, tableID string, profile []byte, hash string) error {
	return op("save profile "+tableID, s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO table_profiles VALUES (?, ?, ?, ?)
			ON CONFLICT (table_id) DO UPDATE SET profile = excluded.profile, profiled_at = excluded.profiled_at,
				hash = excluded.hash`, tableID, string(profile), s.now(), hash)
		return err
	}))
}

// GetProfile implements store.Profiles.
func (s *Store) GetProfile(ctx context.Context, tableID string) (*store.Profile, error) {
	p := &store.Profile{}
	var raw string
	err := s.db.QueryRowContext(ctx, `SELECT profile, profiled_at, hash FROM table_profiles WHERE table_id = ?`, tableID).
		Scan(&raw, &p.ProfiledAt, &p.Hash)
	if err != nil {
		return nil, op("get profile "+tableID, err)
	}
	p.JSON, p.ProfiledAt = []byte(raw), p.ProfiledAt.UTC()
	return p, nil
}
