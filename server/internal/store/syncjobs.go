package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Job and table states.
const (
	JobPending   = "pending"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobPartial   = "partial"
	JobCancelled = "cancelled"
)

// JobTable is one table's progress within a sync job.
type JobTable struct {
	TableID   string `json:"table_id"`
	Source    string `json:"source"`
	State     string `json:"state"`
	Step      string `json:"step,omitempty"`
	Rows      int64  `json:"rows"`
	SizeBytes int64  `json:"size_bytes"`
	Error     string `json:"error,omitempty"`
}

// SyncJob is one run of the sync pipeline.
type SyncJob struct {
	ID          string
	State       string
	Tables      []JobTable
	TriggeredBy string
	CreatedAt   time.Time
	StartedAt   *time.Time
	FinishedAt  *time.Time
	Error       string
	Generation  int64
}

// Finished reports whether the job has ended.
func (j *SyncJob) Finished() bool {
	switch j.State {
	case JobSucceeded, JobFailed, JobPartial, JobCancelled:
		return true
	}
	return false
}

// SaveJob inserts or updates a job row.
func (s *Store) SaveJob(ctx context.Context, j *SyncJob) error {
	tables, err := json.Marshal(j.Tables)
	if err != nil {
		return err
	}
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sync_jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET state = excluded.state, tables = excluded.tables,
				started_at = excluded.started_at, finished_at = excluded.finished_at, error = excluded.error,
				generation = excluded.generation`,
			j.ID, j.State, string(tables), j.TriggeredBy, j.CreatedAt, j.StartedAt, j.FinishedAt, j.Error, j.Generation)
		return err
	})
}

const jobSelect = `SELECT id, state, tables, triggered_by, created_at, started_at, finished_at, error, generation FROM sync_jobs`

func scanJob(row scanner) (*SyncJob, error) {
	j := &SyncJob{}
	var tables string
	var started, finished sql.NullTime
	if err := row.Scan(&j.ID, &j.State, &tables, &j.TriggeredBy, &j.CreatedAt, &started, &finished, &j.Error, &j.Generation); err != nil {
		return nil, err
	}
	j.CreatedAt = j.CreatedAt.UTC()
	j.StartedAt, j.FinishedAt = nullTime(started), nullTime(finished)
	if err := json.Unmarshal([]byte(tables), &j.Tables); err != nil {
		return nil, fmt.Errorf("job %s tables: %w", j.ID, err)
	}
	return j, nil
}

// GetJob returns a job.
func (s *Store) GetJob(ctx context.Context, id string) (*SyncJob, error) {
	j, err := scanJob(s.db.QueryRowContext(ctx, jobSelect+` WHERE id = ?`, id))
	return j, errNoRows(err)
}

// ListJobs returns the newest jobs.
func (s *Store) ListJobs(ctx context.Context, limit int) ([]*SyncJob, error) {
	rows, err := s.db.QueryContext(ctx, jobSelect+` ORDER BY created_at DESC LIMIT ?`, limit)
	return collect(rows, err, scanJob)
}

// CancelUnfinishedJobs marks jobs a previous process left running as cancelled.
func (s *Store) CancelUnfinishedJobs(ctx context.Context, reason string) (int64, error) {
	var n int64
	err := s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sync_jobs SET state = ?, error = ?, finished_at = ? WHERE state IN (?, ?)`,
			JobCancelled, reason, s.now(), JobPending, JobRunning)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

// AddHistory records finished table syncs.
func (s *Store) AddHistory(ctx context.Context, jobID string, started, finished time.Time, tables []JobTable) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		for _, t := range tables {
			if _, err := tx.ExecContext(ctx, `INSERT INTO sync_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				uuid.NewString(), jobID, t.TableID, started, finished, t.State, t.Rows, t.SizeBytes, t.Error); err != nil {
				return err
			}
		}
		return nil
	})
}

// SaveProfile stores a table's data profile (JSON).
func (s *Store) SaveProfile(ctx context.Context, tableID string, profile []byte, hash string) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO table_profiles VALUES (?, ?, ?, ?)
			ON CONFLICT (table_id) DO UPDATE SET profile = excluded.profile, profiled_at = excluded.profiled_at,
				hash = excluded.hash`, tableID, string(profile), s.now(), hash)
		return err
	})
}

// Profile is a stored data profile.
type Profile struct {
	JSON       []byte
	ProfiledAt time.Time
	Hash       string
}

// GetProfile returns a table's stored profile.
func (s *Store) GetProfile(ctx context.Context, tableID string) (*Profile, error) {
	p := &Profile{}
	var raw string
	err := s.db.QueryRowContext(ctx, `SELECT profile, profiled_at, hash FROM table_profiles WHERE table_id = ?`, tableID).
		Scan(&raw, &p.ProfiledAt, &p.Hash)
	if err != nil {
		return nil, errNoRows(err)
	}
	p.JSON, p.ProfiledAt = []byte(raw), p.ProfiledAt.UTC()
	return p, nil
}
