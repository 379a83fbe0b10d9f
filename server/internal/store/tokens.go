package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// PAT is a personal access token's row. The token itself is never stored: only its
// SHA-256, so a database leak yields no usable tokens.
type PAT struct {
	ID         string
	UserID     string
	UserEmail  string
	Name       string
	TokenHash  string
	Prefix     string
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	LastUsedIP string
	RevokedAt  *time.Time
}

const patSelect = `SELECT t.id, t.user_id, coalesce(u.email, ''), t.name, t.token_hash, t.prefix, t.created_at,
	t.expires_at, t.last_used_at, t.last_used_ip, t.revoked_at
	FROM personal_access_tokens t LEFT JOIN users u ON u.id = t.user_id`

func scanPAT(row scanner) (*PAT, error) {
	p := &PAT{}
	var exp, used, rev sql.NullTime
	var ip sql.NullString
	if err := row.Scan(&p.ID, &p.UserID, &p.UserEmail, &p.Name, &p.TokenHash, &p.Prefix, &p.CreatedAt, &exp, &used, &ip, &rev); err != nil {
		return nil, err
	}
	p.CreatedAt = p.CreatedAt.UTC()
	p.ExpiresAt, p.LastUsedAt, p.RevokedAt, p.LastUsedIP = nullTime(exp), nullTime(used), nullTime(rev), ip.String
	return p, nil
}

// CreatePAT stores a token row.
func (s *Store) CreatePAT(ctx context.Context, p *PAT) error {
	return s.writeIdentity(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO personal_access_tokens (id, user_id, name, token_hash, prefix, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, p.ID, p.UserID, p.Name, p.TokenHash, p.Prefix, p.CreatedAt, p.ExpiresAt)
		return err
	})
}

// GetPAT returns a token row by id (cached between identity writes: it is read on
// every request made with that token).
func (s *Store) GetPAT(ctx context.Context, id string) (*PAT, error) {
	return cached(&s.cache, "pat:"+id, func() (*PAT, error) {
		p, err := scanPAT(s.db.QueryRowContext(ctx, patSelect+` WHERE t.id = ?`, id))
		return p, errNoRows(err)
	})
}

// ListPATs lists one user's tokens (userID non-empty) or everyone's, newest first.
func (s *Store) ListPATs(ctx context.Context, userID string, limit, offset int) ([]*PAT, error) {
	rows, err := s.db.QueryContext(ctx, patSelect+` WHERE (? = '' OR t.user_id = ?)
		ORDER BY t.created_at DESC, t.id LIMIT ? OFFSET ?`, userID, userID, limit, offset)
	return collect(rows, err, scanPAT)
}

// RevokePAT revokes a token; with ownerID set, only that user's token. ErrNotFound otherwise.
func (s *Store) RevokePAT(ctx context.Context, id, ownerID string) error {
	return s.writeIdentity(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE personal_access_tokens SET revoked_at = coalesce(revoked_at, ?)
			WHERE id = ? AND (? = '' OR user_id = ?)`, s.now(), id, ownerID, ownerID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// touchInterval bounds last-used bookkeeping to one write per token per interval.
const touchInterval = time.Minute

// TouchPAT records a token's use, at most once per minute per token and IP, off the
// request path.
func (s *Store) TouchPAT(id, ip string) {
	now := s.now()
	if !s.touches.due(id+"|"+ip, now) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE personal_access_tokens SET last_used_at = ?, last_used_ip = ? WHERE id = ?`, now, ip, id)
			return err
		})
	}()
}

type touchLog struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (t *touchLog) due(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == nil {
		t.last = map[string]time.Time{}
	}
	if now.Sub(t.last[key]) < touchInterval {
		return false
	}
	t.last[key] = now
	return true
}

// RevokeSession records a logged-out session until it would have expired.
func (s *Store) RevokeSession(ctx context.Context, jti, userID string, expiresAt time.Time) error {
	err := s.Write(ctx, func(tx *sql.Tx) error {
		// Expired revocations are pruned here: the table stays as small as the set of
		// live logged-out sessions.
		if _, err := tx.ExecContext(ctx, `DELETE FROM revoked_sessions WHERE expires_at < ?`, s.now()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO revoked_sessions VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			jti, userID, expiresAt, s.now())
		return err
	})
	if err != nil {
		return err
	}
	s.revoked.add(jti, expiresAt)
	return nil
}

// SessionRevoked reports whether a session token was logged out.
func (s *Store) SessionRevoked(jti string) bool { return s.revoked.has(jti) }

// revokedSet mirrors revoked_sessions in memory: checked on every request.
type revokedSet struct {
	mu sync.RWMutex
	m  map[string]time.Time
}

func (r *revokedSet) add(jti string, exp time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]time.Time{}
	}
	r.m[jti] = exp
}

func (r *revokedSet) has(jti string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.m[jti]
	return ok
}

func (s *Store) loadRevoked(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT jti, expires_at FROM revoked_sessions WHERE expires_at >= ?`, s.now())
	if err != nil {
		return fmt.Errorf("load revoked sessions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var jti string
		var exp time.Time
		if err := rows.Scan(&jti, &exp); err != nil {
			return err
		}
		s.revoked.add(jti, exp)
	}
	return rows.Err()
}
