package duckdbstore

import (
	"github.com/agnesdata/agnes/server/internal/store"

	"context"
	"database/sql"
	"fmt"

	"github.com/google/uuid"
)

const accessRequestSelect = `SELECT a.id, a.user_id, coalesce(u.email, ''), a.resource_type, a.resource_id, a.reason,
	a.status, a.created_at, coalesce(a.reviewed_by, ''), a.reviewed_at, coalesce(a.review_note, ''),
	coalesce(a.granted_group_id, '')
	FROM access_requests a LEFT JOIN users u ON u.id = a.user_id`

func scanAccessRequest(row scanner) (*store.AccessRequest, error) {
	r := &store.AccessRequest{}
	var reviewed sql.NullTime
	if err := row.Scan(&r.ID, &r.UserID, &r.UserEmail, &r.ResourceType, &r.ResourceID, &r.Reason, &r.Status,
		&r.CreatedAt, &r.ReviewedBy, &reviewed, &r.ReviewNote, &r.GrantedGroupID); err != nil {
		return nil, err
	}
	r.CreatedAt = r.CreatedAt.UTC()
	r.ReviewedAt = nullTime(reviewed)
	return r, nil
}

// CreateAccessRequest files a pending request. store.ErrAlreadyExists when the user already
// has a pending request for the same resource.
func (s *Store) CreateAccessRequest(ctx context.Context, userID, resourceType, resourceID, reason string) (*store.AccessRequest, error) {
	id := uuid.NewString()
	err := s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM access_requests WHERE user_id = ? AND resource_type = ?
			AND resource_id = ? AND status = 'pending'`, userID, resourceType, resourceID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("pending request: %w", store.ErrAlreadyExists)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO access_requests (id, user_id, resource_type, resource_id, reason, status, created_at)
			VALUES (?, ?, ?, ?, ?, 'pending', ?)`, id, userID, resourceType, resourceID, reason, s.now())
		return err
	})
	if err != nil {
		return nil, op("create access request", err)
	}
	return s.GetAccessRequest(ctx, id)
}

// GetAccessRequest returns one request.
func (s *Store) GetAccessRequest(ctx context.Context, id string) (*store.AccessRequest, error) {
	r, err := scanAccessRequest(s.db.QueryRowContext(ctx, accessRequestSelect+` WHERE a.id = ?`, id))
	return r, op("get access request", err)
}

// ListAccessRequests lists requests newest first; userID and status narrow the list.
func (s *Store) ListAccessRequests(ctx context.Context, userID, status string) ([]*store.AccessRequest, error) {
	rows, err := s.db.QueryContext(ctx, accessRequestSelect+` WHERE (? = '' OR a.user_id = ?) AND (? = '' OR a.status = ?)
		ORDER BY a.created_at DESC`, userID, userID, status, status)
	res, err := collect(rows, err, scanAccessRequest)
	return res, op("list access requests", err)
}

// ReviewAccessRequest approves or denies a pending request. Approval grants the
// resource to groupID in the same transaction (an existing identical grant is kept).
func (s *Store) ReviewAccessRequest(ctx context.Context, id string, approve bool, groupID, note, by string) (*store.AccessRequest, error) {
	err := s.writeIdentity(ctx, func(tx *sql.Tx) error {
		r, err := scanAccessRequest(tx.QueryRowContext(ctx, accessRequestSelect+` WHERE a.id = ?`, id))
		if err != nil {
			return errNoRows(err)
		}
		if r.Status != "pending" {
			return &store.RuleError{Msg: "access request was already reviewed"}
		}
		status, grantGroup := "denied", any(nil)
		if approve {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM user_groups WHERE id = ?`, groupID).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("group: %w", store.ErrNotFound)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO resource_grants VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				uuid.NewString(), groupID, r.ResourceType, r.ResourceID, s.now(), by); err != nil {
				return err
			}
			status, grantGroup = "approved", groupID
		}
		_, err = tx.ExecContext(ctx, `UPDATE access_requests SET status = ?, reviewed_by = ?, reviewed_at = ?,
			review_note = ?, granted_group_id = ? WHERE id = ?`, status, by, s.now(), note, grantGroup, id)
		return err
	})
	if err != nil {
		return nil, op("review access request", err)
	}
	return s.GetAccessRequest(ctx, id)
}
