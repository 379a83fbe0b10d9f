package duckdbstore

import (
	"github.com/agnesdata/agnes/server/internal/store"

	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

const grantSelect = `SELECT r.id, r.group_id, g.name, r.resource_type, r.resource_id, r.assigned_at, r.assigned_by
	FROM resource_grants r JOIN user_groups g ON g.id = r.group_id`

func scanGrant(row scanner) (*store.Grant, error) {
	g := &store.Grant{}
	if err := row.Scan(&g.ID, &g.GroupID, &g.GroupName, &g.ResourceType, &g.ResourceID, &g.AssignedAt, &g.AssignedBy); err != nil {
		return nil, err
	}
	g.AssignedAt = g.AssignedAt.UTC()
	return g, nil
}

// ListGrants lists grants ordered by group name, type and id.
func (s *Store) ListGrants(ctx context.Context, f store.GrantFilter) ([]*store.Grant, error) {
	rows, err := s.db.QueryContext(ctx, grantSelect+`
		WHERE (? = '' OR r.resource_type = ?) AND (? = '' OR r.group_id = ?)
		ORDER BY g.name, r.resource_type, r.resource_id`, f.ResourceType, f.ResourceType, f.GroupID, f.GroupID)
	res, err := collect(rows, err, scanGrant)
	return res, op("list grants", err)
}

// CreateGrant grants a group access to a resource. store.ErrNotFound for a missing group;
// store.ErrAlreadyExists for a duplicate.
func (s *Store) CreateGrant(ctx context.Context, groupID, resourceType, resourceID, by string) (*store.Grant, error) {
	id := uuid.NewString()
	err := s.writeIdentity(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM user_groups WHERE id = ?`, groupID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("group: %w", store.ErrNotFound)
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM resource_grants WHERE group_id = ? AND resource_type = ? AND resource_id = ?`,
			groupID, resourceType, resourceID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("grant: %w", store.ErrAlreadyExists)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO resource_grants VALUES (?, ?, ?, ?, ?, ?)`,
			id, groupID, resourceType, resourceID, s.now(), by)
		return err
	})
	if err != nil {
		return nil, op("create grant", err)
	}
	g, err := scanGrant(s.db.QueryRowContext(ctx, grantSelect+` WHERE r.id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("read grant: %w", err)
	}
	return g, nil
}

// DeleteGrant revokes a grant.
func (s *Store) DeleteGrant(ctx context.Context, id string) error {
	return op("delete grant", s.writeIdentity(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM resource_grants WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		return nil
	}))
}

// DeleteGrantsFor removes every grant on a resource (when the resource goes away).
func (s *Store) DeleteGrantsFor(ctx context.Context, resourceType, resourceID string) error {
	return op("delete grants for", s.writeIdentity(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM resource_grants WHERE resource_type = ? AND resource_id = ?`, resourceType, resourceID)
		return err
	}))
}

// EffectiveAccess lists a user's explicit grants (no admin short-circuit).
func (s *Store) EffectiveAccess(ctx context.Context, userID string) ([]*store.EffectiveGrant, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT r.resource_type, r.resource_id, g.id, g.name, g.is_system
		FROM resource_grants r JOIN user_group_members m ON m.group_id = r.group_id
		JOIN user_groups g ON g.id = r.group_id WHERE m.user_id = ?
		ORDER BY r.resource_type, r.resource_id, g.name`, userID)
	if err != nil {
		return nil, fmt.Errorf("effective access: %w", err)
	}
	defer rows.Close()
	var out []*store.EffectiveGrant
	for rows.Next() {
		var typ, rid string
		var g store.GroupRef
		if err := rows.Scan(&typ, &rid, &g.ID, &g.Name, &g.IsSystem); err != nil {
			return nil, err
		}
		if n := len(out); n > 0 && out[n-1].ResourceType == typ && out[n-1].ResourceID == rid {
			out[n-1].Via = append(out[n-1].Via, g)
			continue
		}
		out = append(out, &store.EffectiveGrant{ResourceType: typ, ResourceID: rid, Via: []store.GroupRef{g}})
	}
	return out, op("effective access", rows.Err())
}

// errNoRows maps sql.ErrNoRows to store.ErrNotFound.
func errNoRows(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}
