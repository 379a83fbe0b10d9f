package harness

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// InProc is the in-process baseline: duckdb-go in the harness process, an
// in-memory DuckDB with a view "big" over the same Parquet file the server
// reads.
type InProc struct {
	DB *sql.DB
}

// OpenInProc opens an in-memory DuckDB with the view big over parquet.
func OpenInProc(ctx context.Context, parquet string) (*InProc, error) {
	db, err := openParquetDB(ctx, parquet)
	if err != nil {
		return nil, err
	}
	return &InProc{DB: db}, nil
}

// Close closes the database.
func (p *InProc) Close() error { return p.DB.Close() }

// openMemoryDB opens a private in-memory DuckDB.
func openMemoryDB() (*sql.DB, error) {
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(connector), nil
}

func openParquetDB(ctx context.Context, parquet string) (*sql.DB, error) {
	db, err := openMemoryDB()
	if err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, "CREATE VIEW "+bigTable+" AS SELECT * FROM read_parquet('"+strings.ReplaceAll(parquet, "'", "''")+"')"); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// Version is DuckDB's library version.
func (p *InProc) Version(ctx context.Context) string {
	var v string
	if err := p.DB.QueryRowContext(ctx, "SELECT library_version FROM pragma_version()").Scan(&v); err != nil {
		return "unknown"
	}
	return v
}

// Query runs sql with QueryContext and scans every row.
func (p *InProc) Query(ctx context.Context, sql string) (int, error) {
	rows, err := scanAll(ctx, p.DB, sql)
	return len(rows), err
}

// scanAll runs a query and returns every row as JSON-friendly values.
func scanAll(ctx context.Context, db *sql.DB, query string) ([][]any, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	out := [][]any{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, v := range vals {
			vals[i] = jsonValue(v)
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}

// jsonValue turns what duckdb-go scans into something encoding/json writes
// sensibly (decimals and big integers as strings, as Agnes does).
func jsonValue(v any) any {
	switch x := v.(type) {
	case duckdb.Decimal:
		return x.String()
	case *big.Int:
		return x.String()
	case []byte:
		return string(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return v
}

// ArrowResult is what the in-process Arrow run produced.
type ArrowResult struct {
	Rows, Bytes int64
}

// Arrow runs sql through duckdb-go's Arrow interface (NewArrowFromConn on a
// raw connection, QueryContext) and IPC-encodes every record batch to a
// byte counter, as a server would before sending it.
func (p *InProc) Arrow(ctx context.Context, query string) (ArrowResult, error) {
	var r ArrowResult
	conn, err := p.DB.Conn(ctx)
	if err != nil {
		return r, err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		a, err := duckdb.NewArrowFromConn(dconn)
		if err != nil {
			return err
		}
		rr, err := a.QueryContext(ctx, query)
		if err != nil {
			return err
		}
		defer rr.Release()
		cw := &countWriter{}
		w := ipc.NewWriter(cw, ipc.WithSchema(rr.Schema()))
		for rr.Next() {
			rec := rr.RecordBatch()
			r.Rows += rec.NumRows()
			if err := w.Write(rec); err != nil {
				return err
			}
		}
		err = errors.Join(rr.Err(), w.Close())
		r.Bytes = cw.n
		return err
	})
	return r, err
}

// countWriter is io.Discard that counts.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
