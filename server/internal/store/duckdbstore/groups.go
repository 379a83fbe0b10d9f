package duckdbstore

import (
	"github.com/agnesdata/agnes/server/internal/store"

	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// seed creates the system groups if they are missing (idempotent, every open).
func (s *Store) seed(ctx context.Context) error {
	return s.writeIdentity(ctx, func(tx *sql.Tx) error {
		for _, g := range []struct{ name, desc string }{
			{store.GroupAdmin, "Administrators: full access to everything"},
			{store.GroupEveryone, "Every user"},
		} {
			if _, err := tx.ExecContext(ctx, `INSERT INTO user_groups (id, name, description, is_system, created_at, created_by)
				VALUES (?, ?, ?, TRUE, ?, 'system') ON CONFLICT DO NOTHING`, uuid.NewString(), g.name, g.desc, s.now()); err != nil {
				return fmt.Errorf("seed group %s: %w", g.name, err)
			}
		}
		return nil
	})
}

func groupIDByName(ctx context.Context, q querier, name string) (string, error) {
	var id string
	err := q.QueryRowContext(ctx, `SELECT id FROM user_groups WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", store.ErrNotFound
	}
	return id, err
}

// GroupIDByName resolves a group name.
func (s *Store) GroupIDByName(ctx context.Context, name string) (string, error) {
	id, err := groupIDByName(ctx, s.db, name)
	return id, op("group id by name "+name, err)
}

const groupSelect = `SELECT g.id, g.name, g.description, g.is_system, g.created_at, g.created_by,
	(SELECT count(*) FROM user_group_members m WHERE m.group_id = g.id),
	(SELECT count(*) FROM resource_grants r WHERE r.group_id = g.id)
	FROM user_groups g`

func scanGroup(row scanner) (*store.Group, error) {
	g := &store.Group{}
	if err := row.Scan(&g.ID, &g.Name, &g.Description, &g.IsSystem, &g.CreatedAt, &g.CreatedBy, &g.MemberCount, &g.GrantCount); err != nil {
		return nil, err
	}
	g.CreatedAt = g.CreatedAt.UTC()
	return g, nil
}

// ListGroups lists groups ordered by name.
func (s *Store) ListGroups(ctx context.Context) ([]*store.Group, error) {
	rows, err := s.db.QueryContext(ctx, groupSelect+` ORDER BY g.name`)
	res, err := collect(rows, err, scanGroup)
	return res, op("list groups", err)
}

// GetGroup returns a group by id.
func (s *Store) GetGroup(ctx context.Context, id string) (*store.Group, error) {
	g, err := scanGroup(s.db.QueryRowContext(ctx, groupSelect+` WHERE g.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, op("get group", store.ErrNotFound)
	}
	return g, op("get group", err)
}

// CreateGroup creates a group. store.ErrAlreadyExists when the name is taken.
func (s *Store) CreateGroup(ctx context.Context, name, description, by string) (*store.Group, error) {
	id := uuid.NewString()
	err := s.writeIdentity(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO user_groups (id, name, description, is_system, created_at, created_by)
			VALUES (?, ?, ?, FALSE, ?, ?)`, id, name, description, s.now(), by)
		return err
	})
	if err != nil {
		return nil, op("create group", err)
	}
	return s.GetGroup(ctx, id)
}

// UpdateGroup renames a group and/or changes its description. System groups keep their names.
func (s *Store) UpdateGroup(ctx context.Context, id string, name, description *string) (*store.Group, error) {
	err := s.writeIdentity(ctx, func(tx *sql.Tx) error {
		g, err := scanGroup(tx.QueryRowContext(ctx, groupSelect+` WHERE g.id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if name != nil && *name != g.Name {
			if g.IsSystem {
				return &store.RuleError{Msg: "system groups cannot be renamed"}
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM user_groups WHERE name = ?`, *name).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("group %q: %w", *name, store.ErrAlreadyExists)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE user_groups SET name = ? WHERE id = ?`, *name, id); err != nil {
				return err
			}
		}
		if description != nil {
			if _, err := tx.ExecContext(ctx, `UPDATE user_groups SET description = ? WHERE id = ?`, *description, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, op("update group", err)
	}
	return s.GetGroup(ctx, id)
}

// DeleteGroup deletes a group with its memberships and grants. System groups stay.
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	return op("delete group", s.writeIdentity(ctx, func(tx *sql.Tx) error {
		var isSystem bool
		err := tx.QueryRowContext(ctx, `SELECT is_system FROM user_groups WHERE id = ?`, id).Scan(&isSystem)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if isSystem {
			return &store.RuleError{Msg: "cannot delete a system group"}
		}
		for _, q := range []string{
			`DELETE FROM user_group_members WHERE group_id = ?`,
			`DELETE FROM resource_grants WHERE group_id = ?`,
			`DELETE FROM user_groups WHERE id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	}))
}

// ListMembers lists a group's members ordered by email.
func (s *Store) ListMembers(ctx context.Context, groupID string) ([]*store.Member, error) {
	if _, err := s.GetGroup(ctx, groupID); err != nil {
		return nil, op("list members", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT u.id, u.email, u.name, u.active, m.source, m.added_at, m.added_by
		FROM user_group_members m JOIN users u ON u.id = m.user_id WHERE m.group_id = ? ORDER BY u.email`, groupID)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	defer rows.Close()
	var out []*store.Member
	for rows.Next() {
		m := &store.Member{}
		if err := rows.Scan(&m.UserID, &m.Email, &m.Name, &m.Active, &m.Source, &m.AddedAt, &m.AddedBy); err != nil {
			return nil, err
		}
		m.AddedAt = m.AddedAt.UTC()
		out = append(out, m)
	}
	return out, op("list members", rows.Err())
}

func addMember(ctx context.Context, tx *sql.Tx, now time.Time, userID, groupID, source, by string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM user_group_members WHERE user_id = ? AND group_id = ?`,
		userID, groupID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("membership: %w", store.ErrAlreadyExists)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO user_group_members VALUES (?, ?, ?, ?, ?)`, userID, groupID, source, now, by)
	return err
}

// AddMember adds a user to a group. store.ErrNotFound for a missing user or group;
// store.ErrAlreadyExists when already a member.
func (s *Store) AddMember(ctx context.Context, groupID, userID, by string) (*store.Member, error) {
	err := s.writeIdentity(ctx, func(tx *sql.Tx) error {
		if err := userExists(ctx, tx, userID); err != nil {
			return fmt.Errorf("user: %w", err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM user_groups WHERE id = ?`, groupID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("group: %w", store.ErrNotFound)
		}
		return addMember(ctx, tx, s.now(), userID, groupID, "admin", by)
	})
	if err != nil {
		return nil, op("add member", err)
	}
	members, err := s.ListMembers(ctx, groupID)
	if err != nil {
		return nil, op("add member", err)
	}
	for _, m := range members {
		if m.UserID == userID {
			return m, nil
		}
	}
	return nil, store.ErrNotFound
}

// RemoveMember removes a user from a group. Removing the last active admin from Admin,
// or anyone from Everyone, is refused.
func (s *Store) RemoveMember(ctx context.Context, groupID, userID string) error {
	return op("remove member", s.writeIdentity(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM user_group_members WHERE user_id = ? AND group_id = ?`,
			userID, groupID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("membership: %w", store.ErrNotFound)
		}
		everyone, err := groupIDByName(ctx, tx, store.GroupEveryone)
		if err != nil {
			return err
		}
		if groupID == everyone {
			return &store.RuleError{Msg: "every user is a member of Everyone"}
		}
		if err := keepAnAdmin(ctx, tx, userID, groupID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM user_group_members WHERE user_id = ? AND group_id = ?`, userID, groupID)
		return err
	}))
}
