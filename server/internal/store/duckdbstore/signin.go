package duckdbstore

import (
	"github.com/agnesdata/agnes/server/internal/store"

	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
)

// IssueOneTimeToken implements store.OneTimeTokens. One-time tokens are not part
// of any cached identity, so issuing one does not move IdentityVersion: a flood
// of anonymous magic-link requests cannot flush the identity cache.
func (s *Store) IssueOneTimeToken(ctx context.Context, t *store.OneTimeToken) error {
	return op("issue one-time token", s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM one_time_tokens WHERE expires_at < ?`, s.now()); err != nil {
			return err
		}
		if t.UserID != "" {
			if _, err := tx.ExecContext(ctx, `DELETE FROM one_time_tokens WHERE purpose = ? AND user_id = ?`,
				t.Purpose, t.UserID); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO one_time_tokens VALUES (?, ?, ?, ?, ?, ?)`,
			t.Hash, t.Purpose, t.UserID, t.Data, s.now(), t.ExpiresAt.UTC())
		return err
	}))
}

// ConsumeOneTimeToken implements store.OneTimeTokens: one DELETE ... RETURNING
// is the compare-and-swap.
func (s *Store) ConsumeOneTimeToken(ctx context.Context, purpose, hash string, now time.Time) (*store.OneTimeToken, error) {
	t := &store.OneTimeToken{}
	err := s.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `DELETE FROM one_time_tokens WHERE token_hash = ? AND purpose = ? AND expires_at > ?
			RETURNING token_hash, purpose, user_id, data, expires_at`, hash, purpose, now.UTC()).
			Scan(&t.Hash, &t.Purpose, &t.UserID, &t.Data, &t.ExpiresAt)
	})
	if err != nil {
		return nil, op("consume one-time token", err)
	}
	t.ExpiresAt = t.ExpiresAt.UTC()
	return t, nil
}

// SyncMemberships implements store.Groups.
func (s *Store) SyncMemberships(ctx context.Context, userID, source string, groups []string, by string) error {
	return op("sync memberships", s.writeIdentity(ctx, func(tx *sql.Tx) error {
		if err := userExists(ctx, tx, userID); err != nil {
			return fmt.Errorf("user: %w", err)
		}
		want := map[string]bool{}
		for _, name := range groups {
			gid, err := groupIDByName(ctx, tx, name)
			if errors.Is(err, store.ErrNotFound) {
				gid = uuid.NewString()
				_, err = tx.ExecContext(ctx, `INSERT INTO user_groups (id, name, description, is_system, created_at, created_by)
					VALUES (?, ?, '', FALSE, ?, ?)`, gid, name, s.now(), by)
			}
			if err != nil {
				return fmt.Errorf("group %q: %w", name, err)
			}
			want[gid] = true
		}
		rows, err := tx.QueryContext(ctx, `SELECT group_id, source FROM user_group_members WHERE user_id = ?`, userID)
		held, err := collect(rows, err, func(r scanner) ([2]string, error) {
			var v [2]string
			return v, r.Scan(&v[0], &v[1])
		})
		if err != nil {
			return err
		}
		for _, m := range held {
			gid, src := m[0], m[1]
			if want[gid] {
				delete(want, gid) // already a member, whatever the source
				continue
			}
			if src != source {
				continue
			}
			if err := keepAnAdmin(ctx, tx, userID, gid); err != nil {
				var rule *store.RuleError
				if errors.As(err, &rule) {
					continue // the last active admin stays one
				}
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM user_group_members WHERE user_id = ? AND group_id = ?`, userID, gid); err != nil {
				return err
			}
		}
		for _, gid := range slices.Sorted(maps.Keys(want)) {
			if _, err := tx.ExecContext(ctx, `INSERT INTO user_group_members VALUES (?, ?, ?, ?, ?)`,
				userID, gid, source, s.now(), by); err != nil {
				return err
			}
		}
		return nil
	}))
}
