// Package store is the seam between Agnes and its state: the records the server
// keeps (users, groups, grants, tokens, the table registry, sync state, jobs, audit
// log, ...), the small role interfaces its consumers depend on, and the errors
// every implementation returns.
//
// Implementations live in subpackages: duckdbstore (system.duckdb, the embedded
// default) and, for several replicas, a Postgres store to come. Every
// implementation passes the conformance suite in storetest. The caches the server
// keeps in front of the store are a decorator (package cached) over these same
// interfaces, so an implementation never caches and a consumer never knows.
//
// Authorization rules do not live here: an Identity says which groups a user is
// in and which resources those groups were granted; package access decides what
// that allows.
package store
