// Package store owns system.duckdb: users, groups, grants, tokens, audit log and the
// state later features add. The server process is its only writer; every write goes
// through this package, which is what lets it keep the identity cache coherent.
//
// Schema changes are forward-only SQL files in migrations/, embedded and applied in
// order on open (and by `agnes-server migrate`), each in its own transaction.
package store
