package engine

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	bindings "github.com/duckdb/duckdb-go-bindings"
)

// A minimal database/sql driver over the engine's own connections. It lets
// a generation's setup (orchestrator.ReadSources, extract.Attach and
// AttachRemote, which take an extract.Conn) run on the instance the engine
// opened through the C API, with the same statement path as queries. It
// supports what setup needs: one statement per call, positional arguments
// of the basic types, no transactions.

var errUnsupported = errors.New("engine: not supported by the setup connection")

// openSQL returns a *sql.DB whose connections are new connections to db.
// Closing it disconnects them; db stays open.
func openSQL(db bindings.Database) *sql.DB {
	return sql.OpenDB(sqlConnector{db})
}

type sqlConnector struct{ db bindings.Database }

func (c sqlConnector) Connect(context.Context) (driver.Conn, error) {
	cn, err := connect(c.db)
	if err != nil {
		return nil, err
	}
	return &sqlConn{c: cn}, nil
}

func (sqlConnector) Driver() driver.Driver { return sqlDriver{} }

type sqlDriver struct{}

func (sqlDriver) Open(string) (driver.Conn, error) { return nil, errUnsupported }

type sqlConn struct{ c *conn }

var (
	_ driver.ExecerContext  = (*sqlConn)(nil)
	_ driver.QueryerContext = (*sqlConn)(nil)
	_ driver.Validator      = (*sqlConn)(nil)
)

func (s *sqlConn) Prepare(string) (driver.Stmt, error) { return nil, errUnsupported }
func (s *sqlConn) Begin() (driver.Tx, error)           { return nil, errUnsupported }
func (s *sqlConn) Close() error                        { s.c.close(); return nil }

// IsValid keeps database/sql from reusing a connection that abandoned a
// result (see conn.dirty).
func (s *sqlConn) IsValid() bool { return !s.c.dirty }

func (s *sqlConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if err := s.c.exec(ctx, query, args...); err != nil {
		return nil, err
	}
	return driver.RowsAffected(0), nil
}

func (s *sqlConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	st, err := s.c.query(ctx, query, false, args...)
	if err != nil {
		return nil, err
	}
	return &sqlRows{st: st, cols: st.columns()}, nil
}

type sqlRows struct {
	st   *stream
	cols []Column
	rec  arrow.RecordBatch
	row  int
}

func (r *sqlRows) Columns() []string {
	names := make([]string, len(r.cols))
	for i, c := range r.cols {
		names[i] = c.Name
	}
	return names
}

func (r *sqlRows) ColumnTypeDatabaseTypeName(i int) string { return r.cols[i].Type }

func (r *sqlRows) Next(dest []driver.Value) error {
	for r.rec == nil || r.row == int(r.rec.NumRows()) {
		if r.rec != nil {
			r.rec.Release()
			r.rec = nil
		}
		rec, err := r.st.next()
		if err != nil {
			return err
		}
		if rec == nil {
			return io.EOF
		}
		r.rec, r.row = rec, 0
	}
	for j := range r.cols {
		dest[j] = driverValue(r.rec.Column(j), r.row)
	}
	r.row++
	return nil
}

func (r *sqlRows) Close() error {
	if r.rec != nil {
		r.rec.Release()
		r.rec = nil
	}
	r.st.close()
	return nil
}

// driverValue is row i of a as a database/sql value: setup reads names,
// paths, settings and flags. Strings and bytes are copied (the batch's
// buffers go away with it); other types come as their Arrow text.
func driverValue(a arrow.Array, i int) driver.Value {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Boolean:
		return a.Value(i)
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Uint8:
		return int64(a.Value(i))
	case *array.Uint16:
		return int64(a.Value(i))
	case *array.Uint32:
		return int64(a.Value(i))
	case *array.Float32:
		return float64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	case *array.String:
		return strings.Clone(a.Value(i))
	case *array.LargeString:
		return strings.Clone(a.Value(i))
	case *array.Binary:
		return bytes.Clone(a.Value(i))
	case *array.Timestamp:
		return a.Value(i).ToTime(a.DataType().(*arrow.TimestampType).Unit).UTC()
	case *array.Date32:
		return a.Value(i).ToTime()
	}
	return a.ValueStr(i)
}
