package duckdbstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agnesdata/agnes/server/internal/store"
)

const jobSelect = `SELECT id, kind, keys, state, params, progress, error, created_by, created_at, run_after,
	started_at, finished_at, attempts, cancel_requested, owner, lease_until FROM jobs`

func scanJob(row scanner) (*store.Job, error) {
	j := &store.Job{}
	var keys, params, progress string
	var started, finished, lease sql.NullTime
	if err := row.Scan(&j.ID, &j.Kind, &keys, &j.State, &params, &progress, &j.Error, &j.CreatedBy, &j.CreatedAt,
		&j.RunAfter, &started, &finished, &j.Attempts, &j.CancelRequested, &j.Owner, &lease); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(keys), &j.Keys); err != nil {
		return nil, fmt.Errorf("job %s keys: %w", j.ID, err)
	}
	j.CreatedAt, j.RunAfter = j.CreatedAt.UTC(), j.RunAfter.UTC()
	j.StartedAt, j.FinishedAt, j.LeaseUntil = nullTime(started), nullTime(finished), nullTime(lease)
	if params != "" {
		j.Params = []byte(params)
	}
	if progress != "" {
		j.Progress = []byte(progress)
	}
	return j, nil
}

// CreateJob implements store.Jobs.
func (s *Store) CreateJob(ctx context.Context, j *store.Job) error {
	keys, err := json.Marshal(nonNil(j.Keys))
	if err != nil {
		return op("create job", err)
	}
	runAfter := j.RunAfter
	if runAfter.IsZero() {
		runAfter = j.CreatedAt
	}
	return op("create "+j.Kind+" job", s.write(ctx, func(tx *sql.Tx) error {
		for _, k := range j.Keys {
			var holder string
			err := tx.QueryRowContext(ctx, `SELECT job_id FROM job_keys WHERE key = ?`, k).Scan(&holder)
			if err == nil {
				return &store.BusyError{Key: k, JobID: holder}
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO job_keys VALUES (?, ?)`, k, j.ID); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, kind, keys, state, params, progress, created_by, created_at,
			run_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, j.ID, j.Kind, string(keys), store.JobPending, string(j.Params),
			string(j.Progress), j.CreatedBy, j.CreatedAt, runAfter)
		return err
	}))
}

// ClaimJob implements store.Jobs.
func (s *Store) ClaimJob(ctx context.Context, c store.Claim) (*store.Job, error) {
	if len(c.Kinds) == 0 {
		return nil, op("claim job", fmt.Errorf("no kinds: %w", store.ErrNotFound))
	}
	var out *store.Job
	err := s.write(ctx, func(tx *sql.Tx) error {
		now := s.now()
		args := []any{c.ID, c.ID}
		for _, k := range c.Kinds {
			args = append(args, k)
		}
		args = append(args, store.JobPending, now, store.JobRunning, now)
		j, err := scanJob(tx.QueryRowContext(ctx, jobSelect+` WHERE (? = '' OR id = ?)
			AND kind IN (`+placeholders(len(c.Kinds))+`)
			AND ((state = ? AND run_after <= ?) OR (state = ? AND lease_until < ?))
			ORDER BY run_after, created_at, id LIMIT 1`, args...))
		if err != nil {
			return err
		}
		lease := now.Add(c.Lease)
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, owner = ?, lease_until = ?, attempts = attempts + 1,
			started_at = coalesce(started_at, ?) WHERE id = ?`, store.JobRunning, c.Owner, lease, now, j.ID); err != nil {
			return err
		}
		j.State, j.Owner, j.LeaseUntil, j.Attempts = store.JobRunning, c.Owner, &lease, j.Attempts+1
		if j.StartedAt == nil {
			j.StartedAt = &now
		}
		out = j
		return nil
	})
	return out, op("claim job", err)
}

// leased runs fn on a job the owner holds; ErrLeaseLost otherwise.
func (s *Store) leased(ctx context.Context, name, id, owner string, fn func(tx *sql.Tx, j *store.Job) error) error {
	return op(name+" "+id, s.write(ctx, func(tx *sql.Tx) error {
		j, err := scanJob(tx.QueryRowContext(ctx, jobSelect+` WHERE id = ?`, id))
		if err != nil {
			return err
		}
		if j.State != store.JobRunning || j.Owner != owner {
			return store.ErrLeaseLost
		}
		return fn(tx, j)
	}))
}

// RenewLease implements store.Jobs.
func (s *Store) RenewLease(ctx context.Context, id, owner string, lease time.Duration) (bool, error) {
	var cancel bool
	err := s.leased(ctx, "renew lease", id, owner, func(tx *sql.Tx, j *store.Job) error {
		cancel = j.CancelRequested
		_, err := tx.ExecContext(ctx, `UPDATE jobs SET lease_until = ? WHERE id = ?`, s.now().Add(lease), id)
		return err
	})
	return cancel, err
}

// SaveProgress implements store.Jobs.
func (s *Store) SaveProgress(ctx context.Context, id, owner string, progress []byte) error {
	return s.leased(ctx, "save progress", id, owner, func(tx *sql.Tx, _ *store.Job) error {
		_, err := tx.ExecContext(ctx, `UPDATE jobs SET progress = ? WHERE id = ?`, string(progress), id)
		return err
	})
}

// FinishJob implements store.Jobs.
func (s *Store) FinishJob(ctx context.Context, id, owner, state, errMsg string, progress []byte) error {
	if !store.JobFinished(state) {
		return op("finish job "+id, fmt.Errorf("state %q is not final", state))
	}
	return s.leased(ctx, "finish job", id, owner, func(tx *sql.Tx, _ *store.Job) error {
		return finish(ctx, tx, id, state, errMsg, progress, s.now())
	})
}

func finish(ctx context.Context, tx *sql.Tx, id, state, errMsg string, progress []byte, now time.Time) error {
	set, args := `state = ?, error = ?, finished_at = ?, owner = '', lease_until = NULL`, []any{state, errMsg, now}
	if progress != nil {
		set += `, progress = ?`
		args = append(args, string(progress))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE jobs SET `+set+` WHERE id = ?`, append(args, id)...); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM job_keys WHERE job_id = ?`, id)
	return err
}

// RetryJob implements store.Jobs.
func (s *Store) RetryJob(ctx context.Context, id, owner string, runAfter time.Time, errMsg string) error {
	return s.leased(ctx, "retry job", id, owner, func(tx *sql.Tx, _ *store.Job) error {
		_, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, run_after = ?, error = ?, owner = '', lease_until = NULL
			WHERE id = ?`, store.JobPending, runAfter, errMsg, id)
		return err
	})
}

// CancelJob implements store.Jobs.
func (s *Store) CancelJob(ctx context.Context, id, reason string) (*store.Job, error) {
	var out *store.Job
	err := s.write(ctx, func(tx *sql.Tx) error {
		j, err := scanJob(tx.QueryRowContext(ctx, jobSelect+` WHERE id = ?`, id))
		if err != nil {
			return err
		}
		switch j.State {
		case store.JobPending:
			if err := finish(ctx, tx, id, store.JobCancelled, reason, nil, s.now()); err != nil {
				return err
			}
		case store.JobRunning:
			if _, err := tx.ExecContext(ctx, `UPDATE jobs SET cancel_requested = TRUE WHERE id = ?`, id); err != nil {
				return err
			}
		}
		out, err = scanJob(tx.QueryRowContext(ctx, jobSelect+` WHERE id = ?`, id))
		return err
	})
	return out, op("cancel job "+id, err)
}

// ExpireLeases implements store.Jobs.
func (s *Store) ExpireLeases(ctx context.Context, ownerPrefix string) (int, error) {
	if ownerPrefix == "" {
		return 0, op("expire leases", fmt.Errorf("an owner prefix is required"))
	}
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET lease_until = ? WHERE state = ? AND starts_with(owner, ?)`,
			s.now().Add(-time.Second), store.JobRunning, ownerPrefix)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), op("expire leases", err)
}

// GetJob implements store.Jobs.
func (s *Store) GetJob(ctx context.Context, id string) (*store.Job, error) {
	j, err := scanJob(s.db.QueryRowContext(ctx, jobSelect+` WHERE id = ?`, id))
	return j, op("get job "+id, err)
}

// ListJobs implements store.Jobs.
func (s *Store) ListJobs(ctx context.Context, f store.JobFilter) ([]*store.Job, error) {
	where, args := []string{"TRUE"}, []any{}
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, f.Kind)
	}
	if len(f.States) > 0 {
		where = append(where, "state IN ("+placeholders(len(f.States))+")")
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, jobSelect+` WHERE `+strings.Join(where, " AND ")+
		` ORDER BY created_at DESC, id LIMIT ?`, append(args, limit)...)
	js, err := collect(rows, err, scanJob)
	return js, op("list jobs", err)
}

// PruneJobs implements store.Jobs.
func (s *Store) PruneJobs(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE finished_at < ? AND id NOT IN (
			SELECT arg_max(id, finished_at) FROM jobs WHERE finished_at IS NOT NULL GROUP BY kind)`, before.UTC())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), op("prune jobs", err)
}
