package duckdbstore

import (
	"github.com/agnesdata/agnes/server/internal/store"

	"context"
	"database/sql"
	"errors"
)

// GetUserSettings implements store.Settings.
func (s *Store) GetUserSettings(ctx context.Context, userID string) (*store.UserSettings, error) {
	u, err := s.loadUserSettings(ctx, userID)
	return u, op("get settings", err)
}

func (s *Store) loadUserSettings(ctx context.Context, userID string) (*store.UserSettings, error) {
	mode := store.ModeAll
	err := s.db.QueryRowContext(ctx, `SELECT table_mode FROM user_settings WHERE user_id = ?`, userID).Scan(&mode)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT table_id, enabled, updated_at FROM user_sync_settings
		WHERE user_id = ? ORDER BY table_id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var tables []store.UserSetting
	for rows.Next() {
		var u store.UserSetting
		if err := rows.Scan(&u.TableID, &u.Enabled, &u.UpdatedAt); err != nil {
			return nil, err
		}
		u.UpdatedAt = u.UpdatedAt.UTC()
		tables = append(tables, u)
	}
	return store.NewUserSettings(mode, tables), rows.Err()
}

// SetUserSettings implements store.Settings.
func (s *Store) SetUserSettings(ctx context.Context, userID, mode string, tables map[string]bool) error {
	return op("set settings", s.writeIdentity(ctx, func(tx *sql.Tx) error {
		now := s.now()
		if mode != "" {
			if _, err := tx.ExecContext(ctx, `INSERT INTO user_settings VALUES (?, ?, ?)
				ON CONFLICT (user_id) DO UPDATE SET table_mode = excluded.table_mode, updated_at = excluded.updated_at`,
				userID, mode, now); err != nil {
				return err
			}
		}
		for id, enabled := range tables {
			if _, err := tx.ExecContext(ctx, `INSERT INTO user_sync_settings VALUES (?, ?, ?, ?)
				ON CONFLICT (user_id, table_id) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at`,
				userID, id, enabled, now); err != nil {
				return err
			}
		}
		return nil
	}))
}
