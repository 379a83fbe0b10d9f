package store

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors. They carry no transport meaning; the API edge maps them to
// codes. Implementations wrap them with the operation that failed
// ("get user 42: not found"), so compare with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrBusy: an unfinished job already holds one of a new job's keys.
	ErrBusy = errors.New("busy")
	// ErrLeaseLost: the job's lease passed to another owner (or the job ended).
	ErrLeaseLost = errors.New("job lease lost")
)

// RuleError is a request the data model refuses (removing the last admin, renaming
// a system group). Its message is safe to show to the caller.
type RuleError struct{ Msg string }

func (e *RuleError) Error() string { return e.Msg }

// BusyError names the job that holds a key a new job wanted.
type BusyError struct{ Key, JobID string }

func (e *BusyError) Error() string {
	return fmt.Sprintf("job %s already holds %q", e.JobID, e.Key)
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// Store is every role together: what an implementation provides and what the
// conformance suite checks. Consumers take the roles they use, not this.
type Store interface {
	Identities
	Users
	Groups
	Grants
	Tokens
	OneTimeTokens
	AccessRequests
	Registry
	SyncStates
	Profiles
	Metrics
	Settings
	Jobs
	WebhookEvents
	RemoteQuotas
	Audit
	Versions
	Schema
	// Close flushes what is queued (audit rows) and releases the store.
	Close() error
}

// Versions tell a cache when to drop what it holds. Each counter changes after
// every committed write of its domain (identity: users, groups, memberships,
// grants, tokens, sessions, settings; data: registry and sync state). With one
// process they are in memory; a store shared by replicas must advance them on
// every replica's writes (e.g. Postgres LISTEN/NOTIFY).
type Versions interface {
	IdentityVersion() uint64
	DataVersion() uint64
}

// Schema reports the store's schema version: the one applied, and the one this
// binary expects (a mismatch makes health unhealthy).
type Schema interface {
	SchemaVersion(ctx context.Context) (applied, latest int, err error)
}
