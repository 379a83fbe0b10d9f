package duckdbstore

import (
	"github.com/agnesdata/agnes/server/internal/store"

	"context"
	"database/sql"
	"fmt"
)

// Identity implements store.Identities.
func (s *Store) Identity(ctx context.Context, userID string) (*store.Identity, error) {
	id, err := s.loadIdentity(ctx, userID)
	return id, op("identity "+userID, err)
}

func (s *Store) loadIdentity(ctx context.Context, userID string) (*store.Identity, error) {
	id := &store.Identity{UserID: userID, Grants: map[store.Resource]struct{}{}}
	var validAfter sql.NullTime
	err := s.db.QueryRowContext(ctx, `SELECT email, name, active, sessions_valid_after FROM users WHERE id = ?`, userID).
		Scan(&id.Email, &id.Name, &id.Active, &validAfter)
	if err != nil {
		return nil, err
	}
	if validAfter.Valid {
		id.SessionsValidAfter = validAfter.Time.UTC()
	}
	id.Groups, err = s.userGroups(ctx, s.db, userID)
	if err != nil {
		return nil, err
	}
	for _, g := range id.Groups {
		if g.IsSystem && g.Name == store.GroupAdmin {
			id.IsAdmin = true
		}
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT DISTINCT g.resource_type, g.resource_id
		FROM resource_grants g JOIN user_group_members m ON m.group_id = g.group_id
		WHERE m.user_id = ?`, userID)
	if err != nil {
		return nil, fmt.Errorf("load grants: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r store.Resource
		if err := rows.Scan(&r.Type, &r.ID); err != nil {
			return nil, fmt.Errorf("load grants: %w", err)
		}
		id.Grants[r] = struct{}{}
	}
	return id, rows.Err()
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) userGroups(ctx context.Context, q querier, userID string) ([]store.GroupRef, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT g.id, g.name, g.is_system FROM user_group_members m
		JOIN user_groups g ON g.id = m.group_id WHERE m.user_id = ? ORDER BY g.name`, userID)
	if err != nil {
		return nil, fmt.Errorf("load groups: %w", err)
	}
	defer rows.Close()
	var out []store.GroupRef
	for rows.Next() {
		var g store.GroupRef
		if err := rows.Scan(&g.ID, &g.Name, &g.IsSystem); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}
