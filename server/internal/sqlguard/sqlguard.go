package sqlguard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Catalog resolves table references to views registered in the master
// analytics DB.
type Catalog interface {
	// View returns the canonical view name for a reference. Match names the
	// way DuckDB does: case-insensitively for ASCII letters only ("ORDERS"
	// matches "orders", "É" does not match "é"). Return only the platform's
	// registered views, never DuckDB's own (duckdb_tables, sqlite_master, ...).
	View(name string) (canonical string, ok bool)
}

// Checked describes an accepted query.
type Checked struct {
	// Tables holds the canonical names of every view the query references,
	// deduplicated and sorted, for the caller's RBAC check.
	Tables []string
	// SQL is what to run: the query itself, or, when it calls a list or
	// string builder with a size only known at run time, the query with that
	// call guarded (see builders.go).
	SQL string
}

// Limits bound what an accepted query may ask of the engine.
type Limits struct {
	// BuilderSize bounds one call of a list or string builder (list_resize,
	// repeat, lpad, ...): elements or characters. Default 100,000.
	BuilderSize int64
}

// Reason classifies a rejection.
type Reason uint8

// Reasons a query is rejected.
const (
	// NotSelect: the query is empty or not a SELECT (DDL, DML, PRAGMA, SET, ...).
	NotSelect Reason = iota + 1
	// MultipleStatements: more than one statement.
	MultipleStatements
	// SyntaxError: DuckDB cannot parse the query.
	SyntaxError
	// UnknownTable: a table reference is neither a CTE nor a registered view.
	UnknownTable
	// ForbiddenTableFunction: a table function other than range,
	// generate_series or unnest.
	ForbiddenTableFunction
	// ForbiddenFunction: a function that is not an allowed built-in.
	ForbiddenFunction
	// ForbiddenReference: another database or schema, a file path,
	// DESCRIBE/SUMMARIZE/SHOW.
	ForbiddenReference
	// Unsupported: valid SQL the sandbox does not accept, such as query
	// parameters or a parse-tree node this version does not know.
	Unsupported
	// LimitExceeded: a call would build a list or string over Limits.BuilderSize.
	LimitExceeded
)

var reasonNames = [...]string{
	NotSelect:              "NotSelect",
	MultipleStatements:     "MultipleStatements",
	SyntaxError:            "SyntaxError",
	UnknownTable:           "UnknownTable",
	ForbiddenTableFunction: "ForbiddenTableFunction",
	ForbiddenFunction:      "ForbiddenFunction",
	ForbiddenReference:     "ForbiddenReference",
	Unsupported:            "Unsupported",
	LimitExceeded:          "LimitExceeded",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", r)
}

// Error is a rejection the user should see (HTTP 400 / InvalidArgument
// upstream). Any other error returned by Check is internal.
type Error struct {
	Reason  Reason
	Message string // human-readable, safe to show to the user
	// Name is the reference an UnknownTable rejection is about.
	Name string
}

func (e *Error) Error() string { return e.Message }

func reject(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Message: fmt.Sprintf(format, args...)}
}

// Checker validates queries. It is safe for concurrent use.
type Checker struct {
	db     *sql.DB
	limits Limits

	mu   sync.Mutex
	stmt *sql.Stmt // prepared on first use; preparing costs as much as running
}

// New returns a Checker that parses queries with db. db is used for parsing
// only (it runs json_serialize_sql, never the query itself), so it should be a
// dedicated in-memory DuckDB, not the analytics engine. The Checker keeps one
// prepared statement on db (re-prepared on each new pooled connection, so keep
// idle connections for the expected concurrency); closing db releases it.
func New(db *sql.DB, limits Limits) *Checker {
	if limits.BuilderSize <= 0 {
		limits.BuilderSize = 100_000
	}
	return &Checker{db: db, limits: limits}
}

// Without the final cast the driver returns the JSON as a Go map, which
// cannot be scanned into bytes.
const serializeSQL = `SELECT json_serialize_sql(?::VARCHAR)::VARCHAR`

func (c *Checker) statement(ctx context.Context) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stmt == nil {
		stmt, err := c.db.PrepareContext(ctx, serializeSQL)
		if err != nil {
			return nil, err
		}
		c.stmt = stmt
	}
	return c.stmt, nil
}

// Check parses query and decides whether it may run. A rejection is returned
// as *Error; any other error (cancelled context, broken parser DB) is internal.
func (c *Checker) Check(ctx context.Context, query string, cat Catalog) (Checked, error) {
	// A NUL ends the text early for C-string APIs, and DuckDB refuses invalid
	// UTF-8: reject both so the parser and the engine see the same text.
	if !utf8.ValidString(query) {
		return Checked{}, reject(SyntaxError, "query is not valid UTF-8")
	}
	if strings.IndexByte(query, 0) >= 0 {
		return Checked{}, reject(SyntaxError, "query contains a NUL character")
	}

	stmt, err := c.statement(ctx) //nolint:sqlclosecheck // kept prepared for the checker's lifetime
	if err != nil {
		return Checked{}, fmt.Errorf("sqlguard: prepare parser: %w", err)
	}
	var raw []byte
	if err := stmt.QueryRowContext(ctx, query).Scan(&raw); err != nil {
		return Checked{}, fmt.Errorf("sqlguard: parse query: %w", err)
	}
	v, err := decodeJSON(raw)
	if errors.Is(err, errTooDeep) {
		// Thousands of nested subqueries: no analyst writes that.
		return Checked{}, reject(Unsupported, "query is too deeply nested")
	}
	if err != nil {
		return Checked{}, fmt.Errorf("sqlguard: decode parse tree: %w", err)
	}
	// The envelope: {"error": false, "statements": [...]} or
	// {"error": true, "error_type": ..., "error_message": ...}.
	envelope, _ := v.(object)
	switch envelope.get("error") {
	case true:
		return Checked{}, parseError(envelope.str("error_type"), envelope.str("error_message"))
	case false:
	default:
		return Checked{}, errors.New("sqlguard: unexpected json_serialize_sql result")
	}
	statements, _ := envelope.get("statements").([]any)
	switch len(statements) {
	case 0:
		return Checked{}, reject(NotSelect, "query is empty")
	case 1:
	default:
		return Checked{}, reject(MultipleStatements, "only a single SELECT statement is allowed")
	}

	w := walker{cat: cat, tables: map[string]struct{}{}, limits: c.limits}
	if err := w.value(statements[0], nil); err != nil {
		return Checked{}, err
	}
	tables := make([]string, 0, len(w.tables))
	for t := range w.tables {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	out := Checked{Tables: tables, SQL: query}
	if len(w.guards) > 0 {
		if err := c.keepNames(ctx, statements[0]); err != nil {
			return Checked{}, err
		}
		for _, call := range w.guards {
			if err := c.guardCall(ctx, call, c.limits.BuilderSize); err != nil {
				return Checked{}, err
			}
		}
		if out.SQL, err = c.deserialize(ctx, envelope); err != nil {
			return Checked{}, err
		}
	}
	return out, nil
}

// keepNames gives every unaliased select-list entry that holds a builder the
// name DuckDB would have given it (its own SQL text), so that a guarded call
// does not name the result's column after the guard's rewritten SQL.
func (c *Checker) keepNames(ctx context.Context, v any) error {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if err := c.keepNames(ctx, e); err != nil {
				return err
			}
		}
	case object:
		if list, ok := x.get("select_list").([]any); ok && x.str("type") == "SELECT_NODE" {
			for _, e := range list {
				entry, _ := e.(object)
				if entry == nil || entry.str("alias") != "" || !containsBuilder(entry) {
					continue
				}
				name, err := c.expressionText(ctx, entry)
				if err != nil {
					return err
				}
				entry.set("alias", name)
			}
		}
		for _, m := range x {
			if err := c.keepNames(ctx, m.value); err != nil {
				return err
			}
		}
	}
	return nil
}

// expressionText is DuckDB's SQL text of an expression node.
func (c *Checker) expressionText(ctx context.Context, expr object) (string, error) {
	raw, err := c.serialized(ctx, "SELECT NULL")
	if err != nil {
		return "", err
	}
	if !selectNode(raw).set("select_list", []any{expr}) {
		return "", errors.New("sqlguard: SELECT NULL has no select list")
	}
	text, err := c.deserialize(ctx, raw)
	if err != nil {
		return "", err
	}
	name, ok := strings.CutPrefix(text, "SELECT ")
	if !ok {
		return "", fmt.Errorf("sqlguard: unexpected expression text %q", text)
	}
	return name, nil
}

// parseExpression parses "SELECT <expr>" and returns the expression's node.
func (c *Checker) parseExpression(ctx context.Context, query string) (object, error) {
	env, err := c.serialized(ctx, query)
	if err != nil {
		return nil, err
	}
	list, _ := selectNode(env).get("select_list").([]any)
	if len(list) != 1 {
		return nil, fmt.Errorf("cannot parse %q: not one expression", query)
	}
	expr, _ := list[0].(object)
	return expr, nil
}

// serialized is json_serialize_sql's envelope of a query the checker writes
// itself (an error in it is the checker's).
func (c *Checker) serialized(ctx context.Context, query string) (object, error) {
	var raw []byte
	if err := c.db.QueryRowContext(ctx, serializeSQL, query).Scan(&raw); err != nil {
		return nil, err
	}
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, err
	}
	env, _ := v.(object)
	if env.get("error") != false {
		return nil, fmt.Errorf("cannot parse %q: %s", query, env.str("error_message"))
	}
	return env, nil
}

// selectNode is the node of an envelope's one statement.
func selectNode(env object) object {
	stmts, _ := env.get("statements").([]any)
	if len(stmts) != 1 {
		return nil
	}
	stmt, _ := stmts[0].(object)
	node, _ := stmt.get("node").(object)
	return node
}

// deserialize turns a (rewritten) parse tree back into SQL, with DuckDB's own
// json_deserialize_sql.
func (c *Checker) deserialize(ctx context.Context, envelope object) (string, error) {
	raw, err := encodeJSON(nil, envelope)
	if err != nil {
		return "", err
	}
	var out string
	if err := c.db.QueryRowContext(ctx, `SELECT json_deserialize_sql(?::JSON)`, string(raw)).Scan(&out); err != nil {
		return "", fmt.Errorf("sqlguard: write the guarded query: %w", err)
	}
	return out, nil
}

// parseError turns json_serialize_sql's error into a rejection.
func parseError(typ, msg string) *Error {
	// DuckDB appends source context after a blank line; the first paragraph
	// is the message.
	msg, _, _ = strings.Cut(msg, "\n\n")
	msg = strings.TrimSpace(msg)
	switch {
	case strings.HasPrefix(msg, "Only SELECT statements can be serialized"):
		// Also what "SELECT 1; DROP TABLE x" gives: any non-SELECT statement.
		return reject(NotSelect, "only a single SELECT statement is allowed")
	case typ == "parser":
		return reject(SyntaxError, "syntax error: %s", msg)
	case typ == "not implemented":
		return reject(Unsupported, "unsupported query: %s", msg)
	default:
		// Anything else would be an engine-internal message.
		return reject(Unsupported, "unsupported query")
	}
}
