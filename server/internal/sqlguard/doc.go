// Package sqlguard decides whether a user-supplied SQL query may run on the
// analytics engine, and which registered views it reads.
//
// Analysts and AI agents send free-form SQL. Instead of matching keywords,
// the checker lets DuckDB parse the query (json_serialize_sql) and walks the
// resulting parse tree: exactly the tree the engine's binder will see, because
// the engine parses the same text with the same parser. A query passes only
// if it is a single SELECT-shaped statement, every table reference is a CTE
// in scope or a view the Catalog knows, every table function is one of range,
// generate_series and unnest, and every other function is a built-in that
// cannot reach files, the network, settings, the catalog or other SQL. Node
// kinds the checker does not know are rejected, so a DuckDB upgrade that adds
// syntax fails closed.
//
// Defence in depth. This package is layers 1–2 of the SQL sandbox:
//
//  1. statement shape: one SELECT, no DDL, DML, PRAGMA, SET, ATTACH, COPY, ...;
//  2. references: views, table functions and scalar functions, allowlisted;
//  3. RBAC: the caller authorizes the returned Checked.Tables for the user;
//  4. the engine (ADR 0007): DuckDB runs with external access limited to the
//     extracts' files, extension installing and loading disabled and the
//     configuration locked.
//
// Layer 4 holds even if this checker has a hole; layers 1–2 exist so that
// rejections are early, explicit and explainable, and so that RBAC sees every
// view a query touches. See docs/adr/0005-sql-sandbox.md.
package sqlguard
