package duckdbstore

import (
	"github.com/agnesdata/agnes/server/internal/store"

	"context"
	"database/sql"
	"time"
)

const patSelect = `SELECT t.id, t.user_id, coalesce(u.email, ''), t.name, t.token_hash, t.prefix, t.created_at,
	t.expires_at, t.last_used_at, t.last_used_ip, t.revoked_at, coalesce(t.scope, 'general')
	FROM personal_access_tokens t LEFT JOIN users u ON u.id = t.user_id`

func scanPAT(row scanner) (*store.PAT, error) {
	p := &store.PAT{}
	var exp, used, rev sql.NullTime
	var ip sql.NullString
	if err := row.Scan(&p.ID, &p.UserID, &p.UserEmail, &p.Name, &p.TokenHash, &p.Prefix, &p.CreatedAt, &exp, &used, &ip, &rev, &p.Scope); err != nil {
		return nil, err
	}
	p.CreatedAt = p.CreatedAt.UTC()
	p.ExpiresAt, p.LastUsedAt, p.RevokedAt, p.LastUsedIP = nullTime(exp), nullTime(used), nullTime(rev), ip.String
	return p, nil
}

// CreatePAT stores a token row.
func (s *Store) CreatePAT(ctx context.Context, p *store.PAT) error {
	return op("create token", s.writeIdentity(ctx, func(tx *sql.Tx) error {
		scope := p.Scope
		if scope == "" {
			scope = store.ScopeGeneral
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO personal_access_tokens (id, user_id, name, token_hash, prefix, created_at, expires_at, scope)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, p.ID, p.UserID, p.Name, p.TokenHash, p.Prefix, p.CreatedAt, p.ExpiresAt, scope)
		return err
	}))
}

// GetPAT returns a token row by id (cached between identity writes: it is read on
// every request made with that token).
func (s *Store) GetPAT(ctx context.Context, id string) (*store.PAT, error) {
	p, err := scanPAT(s.db.QueryRowContext(ctx, patSelect+` WHERE t.id = ?`, id))
	return p, op("get token "+id, err)
}

// ListPATs lists one user's tokens (userID non-empty) or everyone's, newest first.
func (s *Store) ListPATs(ctx context.Context, userID string, limit, offset int) ([]*store.PAT, error) {
	rows, err := s.db.QueryContext(ctx, patSelect+` WHERE (? = '' OR t.user_id = ?)
		ORDER BY t.created_at DESC, t.id LIMIT ? OFFSET ?`, userID, userID, limit, offset)
	res, err := collect(rows, err, scanPAT)
	return res, op("list tokens", err)
}

// RevokePAT revokes a token; with ownerID set, only that user's token. store.ErrNotFound otherwise.
func (s *Store) RevokePAT(ctx context.Context, id, ownerID string) error {
	return op("revoke token", s.writeIdentity(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE personal_access_tokens SET revoked_at = coalesce(revoked_at, ?)
			WHERE id = ? AND (? = '' OR user_id = ?)`, s.now(), id, ownerID, ownerID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		return nil
	}))
}

// TouchPAT implements store.Tokens.
func (s *Store) TouchPAT(ctx context.Context, id, ip string, at time.Time) error {
	return op("touch token "+id, s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE personal_access_tokens SET last_used_at = ?, last_used_ip = ? WHERE id = ?`, at, ip, id)
		return err
	}))
}

// RevokeSession implements store.Tokens.
func (s *Store) RevokeSession(ctx context.Context, jti, userID string, expiresAt time.Time) error {
	return op("revoke session", s.writeIdentity(ctx, func(tx *sql.Tx) error {
		// Expired revocations are pruned here: the table stays as small as the set of
		// live logged-out sessions.
		if _, err := tx.ExecContext(ctx, `DELETE FROM revoked_sessions WHERE expires_at < ?`, s.now()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO revoked_sessions VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			jti, userID, expiresAt, s.now())
		return err
	}))
}

// SessionRevoked implements store.Tokens.
func (s *Store) SessionRevoked(ctx context.Context, jti string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM revoked_sessions WHERE jti = ?`, jti).Scan(&n)
	return n > 0, op("session revoked", err)
}
