package duckdbstore

import (
	"time"

	"github.com/agnesdata/agnes/server/internal/store"

	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

const userColumns = `id, email, name, password_hash IS NOT NULL, active, created_at, deactivated_at`

func scanUser(row scanner) (*store.User, error) {
	u := &store.User{}
	var deact sql.NullTime
	if err := row.Scan(&u.ID, &u.Email, &u.Name, &u.HasPassword, &u.Active, &u.CreatedAt, &deact); err != nil {
		return nil, err
	}
	u.CreatedAt = u.CreatedAt.UTC()
	u.DeactivatedAt = nullTime(deact)
	return u, nil
}

func (s *Store) withGroups(ctx context.Context, q querier, u *store.User) error {
	gs, err := s.userGroups(ctx, q, u.ID)
	if err != nil {
		return err
	}
	u.Groups = gs
	for _, g := range gs {
		if g.IsSystem && g.Name == store.GroupAdmin {
			u.IsAdmin = true
		}
	}
	return nil
}

// CreateUser creates a user, a member of Everyone plus the named groups.
// store.ErrAlreadyExists when the email is taken; store.ErrNotFound when a group does not exist.
func (s *Store) CreateUser(ctx context.Context, nu store.NewUser) (*store.User, error) {
	id := uuid.NewString()
	err := s.writeIdentity(ctx, func(tx *sql.Tx) error {
		var hash any
		if nu.PasswordHash != "" {
			hash = nu.PasswordHash
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, email, name, password_hash, active, created_at)
			VALUES (?, ?, ?, ?, TRUE, ?)`, id, store.NormalizeEmail(nu.Email), nu.Name, hash, s.now()); err != nil {
			return err
		}
		groups := append([]string{store.GroupEveryone}, nu.Groups...)
		if nu.Admin {
			groups = append(groups, store.GroupAdmin)
		}
		seen := map[string]bool{}
		for _, name := range groups {
			if seen[name] {
				continue
			}
			seen[name] = true
			gid, err := groupIDByName(ctx, tx, name)
			if err != nil {
				return fmt.Errorf("group %q: %w", name, err)
			}
			source := "admin"
			if name == store.GroupEveryone {
				source = "system_seed"
			}
			if err := addMember(ctx, tx, s.now(), id, gid, source, nu.By); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, op("create user", err)
	}
	return s.GetUser(ctx, id)
}

// GetUser returns a user by id.
func (s *Store) GetUser(ctx context.Context, id string) (*store.User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, op("get user", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	return u, s.withGroups(ctx, s.db, u)
}

// CredentialsByEmail looks a user up for sign-in.
func (s *Store) CredentialsByEmail(ctx context.Context, email string) (*store.UserCredentials, error) {
	c := &store.UserCredentials{}
	var hash sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT id, email, active, password_hash FROM users WHERE email = ?`,
		store.NormalizeEmail(email)).Scan(&c.ID, &c.Email, &c.Active, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, op("credentials by email", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get credentials: %w", err)
	}
	c.PasswordHash = hash.String
	return c, nil
}

// UserIDByEmail resolves an email.
func (s *Store) UserIDByEmail(ctx context.Context, email string) (string, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT id FROM users WHERE email = ?`, store.NormalizeEmail(email)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", op("user id by email", store.ErrNotFound)
	}
	return id, op("user id by email", err)
}

// ListUsers pages through users ordered by email.
func (s *Store) ListUsers(ctx context.Context, limit, offset int) ([]*store.User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY email LIMIT ? OFFSET ?`, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	var out []*store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			_ = rows.Close()
			return nil, err
		}
		out = append(out, u)
	}
	_ = rows.Close()
	if err := rows.Err(); err != nil {
		return nil, op("list users", err)
	}
	for _, u := range out {
		if err := s.withGroups(ctx, s.db, u); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// AnyPassword reports whether any user has a password (bootstrap is closed once one does).
func (s *Store) AnyPassword(ctx context.Context) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE password_hash IS NOT NULL`).Scan(&n)
	return n > 0, op("any password", err)
}

// Bootstrap makes the first admin: it creates the user (or sets the password of an
// existing one) and adds them to Admin, all in one transaction that re-checks no
// user has a password, so two racing bootstraps cannot both win.
func (s *Store) Bootstrap(ctx context.Context, email, name, passwordHash string) (*store.User, error) {
	email = store.NormalizeEmail(email)
	var userID string
	err := s.writeIdentity(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE password_hash IS NOT NULL`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return &store.RuleError{Msg: "bootstrap is closed: a user with a password already exists"}
		}
		err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE email = ?`, email).Scan(&userID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			userID = uuid.NewString()
			if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, email, name, password_hash, active, created_at)
				VALUES (?, ?, ?, ?, TRUE, ?)`, userID, email, name, passwordHash, s.now()); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			if _, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, active = TRUE, deactivated_at = NULL WHERE id = ?`,
				passwordHash, userID); err != nil {
				return err
			}
		}
		for _, g := range []string{store.GroupEveryone, store.GroupAdmin} {
			gid, err := groupIDByName(ctx, tx, g)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO user_group_members VALUES (?, ?, 'system_seed', ?, 'bootstrap')
				ON CONFLICT DO NOTHING`, userID, gid, s.now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, op("bootstrap", err)
	}
	return s.GetUser(ctx, userID)
}

// UpdateUser changes name and/or active state. Deactivating the last active admin is refused.
func (s *Store) UpdateUser(ctx context.Context, id string, name *string, active *bool) (*store.User, error) {
	err := s.writeIdentity(ctx, func(tx *sql.Tx) error {
		if err := userExists(ctx, tx, id); err != nil {
			return err
		}
		if name != nil {
			if _, err := tx.ExecContext(ctx, `UPDATE users SET name = ? WHERE id = ?`, *name, id); err != nil {
				return err
			}
		}
		if active != nil {
			if !*active {
				if err := keepAnAdmin(ctx, tx, id, ""); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `UPDATE users SET active = FALSE, deactivated_at = coalesce(deactivated_at, ?) WHERE id = ?`, s.now(), id); err != nil {
					return err
				}
				return endSessions(ctx, tx, id, s.now())
			}
			_, err := tx.ExecContext(ctx, `UPDATE users SET active = TRUE, deactivated_at = NULL WHERE id = ?`, id)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, op("update user", err)
	}
	return s.GetUser(ctx, id)
}

// SetPassword sets (or, with an empty hash, clears) a user's password.
func (s *Store) SetPassword(ctx context.Context, id, hash string) error {
	return op("set password", s.writeIdentity(ctx, func(tx *sql.Tx) error {
		if err := userExists(ctx, tx, id); err != nil {
			return err
		}
		var h any
		if hash != "" {
			h = hash
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, h, id); err != nil {
			return err
		}
		return endSessions(ctx, tx, id, s.now())
	}))
}

// endSessions ends a user's sessions and personal access tokens as of now: on a
// password change and on deactivation, so a stolen credential dies with the old
// password and a reactivated account starts with none.
func endSessions(ctx context.Context, tx *sql.Tx, id string, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `UPDATE users SET sessions_valid_after = ? WHERE id = ?`, now, id); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE personal_access_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE user_id = ?`, now, id)
	return err
}

// DeleteUser deletes a user with their memberships and tokens. Deleting the last
// active admin is refused.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return op("delete user", s.writeIdentity(ctx, func(tx *sql.Tx) error {
		if err := userExists(ctx, tx, id); err != nil {
			return err
		}
		if err := keepAnAdmin(ctx, tx, id, ""); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM user_group_members WHERE user_id = ?`,
			`DELETE FROM personal_access_tokens WHERE user_id = ?`,
			`DELETE FROM users WHERE id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	}))
}

func userExists(ctx context.Context, tx *sql.Tx, id string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE id = ?`, id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// keepAnAdmin refuses a change that would leave no active admin: userID is about to
// lose admin-ness (deactivated, deleted, or — with groupID — removed from a group).
func keepAnAdmin(ctx context.Context, tx *sql.Tx, userID, groupID string) error {
	adminID, err := groupIDByName(ctx, tx, store.GroupAdmin)
	if err != nil {
		return err
	}
	if groupID != "" && groupID != adminID {
		return nil
	}
	var isActiveAdmin bool
	if err := tx.QueryRowContext(ctx, `SELECT count(*) > 0 FROM user_group_members m JOIN users u ON u.id = m.user_id
		WHERE m.group_id = ? AND m.user_id = ? AND u.active`, adminID, userID).Scan(&isActiveAdmin); err != nil {
		return err
	}
	if !isActiveAdmin {
		return nil
	}
	var others int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM user_group_members m JOIN users u ON u.id = m.user_id
		WHERE m.group_id = ? AND m.user_id <> ? AND u.active`, adminID, userID).Scan(&others); err != nil {
		return err
	}
	if others == 0 {
		return &store.RuleError{Msg: "cannot remove or deactivate the last active admin"}
	}
	return nil
}
