package store

import (
	"context"
	"time"
)

// Job states. A job is pending until a runner leases it, running while leased,
// and then ends in one of the others.
const (
	JobPending   = "pending"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobPartial   = "partial" // some of its work failed (a sync with a failed table)
	JobCancelled = "cancelled"
)

// JobFinished reports whether a state is final.
func JobFinished(state string) bool {
	switch state {
	case JobSucceeded, JobFailed, JobPartial, JobCancelled:
		return true
	}
	return false
}

// Job is one unit of background work: a sync, a rebuild, a webhook event to
// process, a periodic check. Params and Progress are the kind's own JSON.
type Job struct {
	ID   string
	Kind string
	// Keys make a job a singleton where needed: no two unfinished jobs share a
	// key ("sync:kbc_sales" — one sync per source at a time).
	Keys      []string
	State     string
	Params    []byte
	Progress  []byte
	Error     string
	CreatedBy string
	CreatedAt time.Time
	// RunAfter: not leased before (a retry's backoff).
	RunAfter   time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
	// Attempts counts leases: more than one means a retry, or that a runner died
	// holding it.
	Attempts        int
	CancelRequested bool
	// Owner holds the lease until LeaseUntil; nobody else runs the job meanwhile.
	Owner      string
	LeaseUntil *time.Time
}

// Finished reports whether the job has ended.
func (j *Job) Finished() bool { return JobFinished(j.State) }

// JobFilter narrows ListJobs; zero fields match everything.
type JobFilter struct {
	Kind   string
	States []string
	Limit  int // default 100
}

// Claim asks for a lease on a job.
type Claim struct {
	Owner string
	Lease time.Duration
	// Kinds the owner runs (required).
	Kinds []string
	// ID, when set, claims that job only.
	ID string
}

// Jobs is the job queue and its leases. Everything here is atomic in the store,
// so two processes sharing it never run one job twice and never start two jobs
// holding the same key.
type Jobs interface {
	// CreateJob stores a pending job (ID, Kind, CreatedAt required). A *BusyError
	// (errors.Is ErrBusy) when an unfinished job holds one of its keys.
	CreateJob(ctx context.Context, j *Job) error
	// ClaimJob leases the oldest due job of the claim's kinds: pending with
	// RunAfter passed, or running with its lease expired (its runner died). The
	// job comes back running, with Attempts counted. ErrNotFound when none is due.
	ClaimJob(ctx context.Context, c Claim) (*Job, error)
	// RenewLease extends the owner's lease and reports whether cancellation was
	// requested. ErrLeaseLost when the owner no longer holds it.
	RenewLease(ctx context.Context, id, owner string, lease time.Duration) (cancel bool, err error)
	// SaveProgress stores the job's progress (ErrLeaseLost as RenewLease).
	SaveProgress(ctx context.Context, id, owner string, progress []byte) error
	// FinishJob ends the job in a final state, freeing its keys.
	FinishJob(ctx context.Context, id, owner, state, errMsg string, progress []byte) error
	// RetryJob puts a leased job back to pending until runAfter, keeping its keys.
	RetryJob(ctx context.Context, id, owner string, runAfter time.Time, errMsg string) error
	// CancelJob ends a pending job at once, or asks a running one to stop (its
	// runner sees it at the next lease renewal). It returns the job as it now is.
	CancelJob(ctx context.Context, id, reason string) (*Job, error)
	// ExpireLeases ends the leases of every owner whose name starts with prefix
	// (a restarted process reclaiming what its previous life held), so their
	// running jobs can be claimed at once. It returns how many it released.
	ExpireLeases(ctx context.Context, ownerPrefix string) (int, error)
	GetJob(ctx context.Context, id string) (*Job, error)
	// ListJobs lists jobs, newest first.
	ListJobs(ctx context.Context, f JobFilter) ([]*Job, error)
	// PruneJobs deletes the jobs that finished before before, except each
	// kind's latest (what a status page shows), and returns how many.
	PruneJobs(ctx context.Context, before time.Time) (int, error)
}
