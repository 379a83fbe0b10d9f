package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Subscription modes: every granted table, or only the ones the user enabled.
const (
	ModeAll      = "all"
	ModeSelected = "selected"
)

// UserSetting is a user's preference for one table.
type UserSetting struct {
	TableID   string
	Enabled   bool
	UpdatedAt time.Time
}

// UserSettings is a user's sync preferences. Values from GetUserSettings are
// shared (cached): read them, do not modify them.
type UserSettings struct {
	TableMode string
	Tables    []UserSetting
	enabled   map[string]bool // Tables by id
}

// Enabled says whether the preferences let a table into the user's manifest.
func (u *UserSettings) Enabled(tableID string) bool {
	if e, ok := u.enabled[tableID]; ok {
		return e
	}
	return u.TableMode != ModeSelected
}

// GetUserSettings returns a user's preferences (mode "all" and none set by
// default). They are read on every manifest, so they are cached with the
// identities and dropped on any settings write.
func (s *Store) GetUserSettings(ctx context.Context, userID string) (*UserSettings, error) {
	return cached(&s.cache, "settings:"+userID, func() (*UserSettings, error) { return s.loadUserSettings(ctx, userID) })
}

func (s *Store) loadUserSettings(ctx context.Context, userID string) (*UserSettings, error) {
	out := &UserSettings{TableMode: ModeAll, Tables: []UserSetting{}, enabled: map[string]bool{}}
	err := s.db.QueryRowContext(ctx, `SELECT table_mode FROM user_settings WHERE user_id = ?`, userID).Scan(&out.TableMode)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT table_id, enabled, updated_at FROM user_sync_settings
		WHERE user_id = ? ORDER BY table_id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var u UserSetting
		if err := rows.Scan(&u.TableID, &u.Enabled, &u.UpdatedAt); err != nil {
			return nil, err
		}
		u.UpdatedAt = u.UpdatedAt.UTC()
		out.Tables = append(out.Tables, u)
		out.enabled[u.TableID] = u.Enabled
	}
	return out, rows.Err()
}

// SetUserSettings applies table preferences and, when mode is non-empty, the mode.
func (s *Store) SetUserSettings(ctx context.Context, userID, mode string, tables map[string]bool) error {
	return s.writeIdentity(ctx, func(tx *sql.Tx) error {
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
	})
}
