package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// System group names. Both are seeded on open and cannot be renamed or deleted.
const (
	GroupAdmin    = "Admin"
	GroupEveryone = "Everyone"
)

// Resource types a grant can name.
const (
	ResourceTable = "table"
)

// GroupRef names a group a user belongs to.
type GroupRef struct {
	ID       string
	Name     string
	IsSystem bool
}

// Identity is who a user is right now: what authentication and authorization need on
// every request. It is cached and rebuilt after any identity write.
type Identity struct {
	UserID  string
	Email   string
	Name    string
	Active  bool
	IsAdmin bool
	Groups  []GroupRef
	grants  map[grantKey]struct{}
}

type grantKey struct{ typ, id string }

// Can reports whether the identity may reach a resource: admins always, others through
// an explicit grant to one of their groups.
func (id *Identity) Can(resourceType, resourceID string) bool {
	if id.IsAdmin {
		return true
	}
	_, ok := id.grants[grantKey{resourceType, resourceID}]
	return ok
}

// GrantedIDs lists the ids of resources of one type granted to the identity's groups.
func (id *Identity) GrantedIDs(resourceType string) []string {
	var out []string
	for k := range id.grants {
		if k.typ == resourceType {
			out = append(out, k.id)
		}
	}
	return out
}

// identityCache keeps identities, token rows and sync settings between writes
// (keys "user:<id>", "pat:<id>", "settings:<user id>"). gen guards against a reader that loaded from the database before a
// write storing its stale result after it.
type identityCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]any
}

func (c *identityCache) get(key string) (any, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key], c.gen
}

func (c *identityCache) put(gen uint64, key string, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.m == nil {
		c.m = map[string]any{}
	}
	c.m[key] = v
}

func (c *identityCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.m = nil
}

// cached returns what the cache holds under key, or loads it and keeps it
// (unless a write came in meanwhile).
func cached[T any](c *identityCache, key string, load func() (T, error)) (T, error) {
	v, gen := c.get(key)
	if t, ok := v.(T); ok {
		return t, nil
	}
	t, err := load()
	if err != nil {
		return t, err
	}
	c.put(gen, key, t)
	return t, nil
}

// writeIdentity is Write for changes to users, groups, memberships, grants or
// sync settings: it also invalidates the identity cache, after the commit.
func (s *Store) writeIdentity(ctx context.Context, fn func(tx *sql.Tx) error) error {
	defer s.cache.clear()
	return s.Write(ctx, fn)
}

// Identity returns the current identity of a user. ErrNotFound when the user does not exist.
func (s *Store) Identity(ctx context.Context, userID string) (*Identity, error) {
	return cached(&s.cache, "user:"+userID, func() (*Identity, error) { return s.loadIdentity(ctx, userID) })
}

func (s *Store) loadIdentity(ctx context.Context, userID string) (*Identity, error) {
	id := &Identity{UserID: userID, grants: map[grantKey]struct{}{}}
	err := s.db.QueryRowContext(ctx, `SELECT email, name, active FROM users WHERE id = ?`, userID).
		Scan(&id.Email, &id.Name, &id.Active)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load user: %w", err)
	}
	id.Groups, err = s.userGroups(ctx, s.db, userID)
	if err != nil {
		return nil, err
	}
	for _, g := range id.Groups {
		if g.IsSystem && g.Name == GroupAdmin {
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
		var k grantKey
		if err := rows.Scan(&k.typ, &k.id); err != nil {
			return nil, fmt.Errorf("load grants: %w", err)
		}
		id.grants[k] = struct{}{}
	}
	return id, rows.Err()
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) userGroups(ctx context.Context, q querier, userID string) ([]GroupRef, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT g.id, g.name, g.is_system FROM user_group_members m
		JOIN user_groups g ON g.id = m.group_id WHERE m.user_id = ? ORDER BY g.name`, userID)
	if err != nil {
		return nil, fmt.Errorf("load groups: %w", err)
	}
	defer rows.Close()
	var out []GroupRef
	for rows.Next() {
		var g GroupRef
		if err := rows.Scan(&g.ID, &g.Name, &g.IsSystem); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}
