package pull

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/duckdb/duckdb-go/v2"
)

// writeDatabase builds agnes.duckdb anew with one view per table over its local
// Parquet, in a temp file renamed into place: a tool holding the old file open
// keeps reading the old one, the next open sees the new.
func writeDatabase(ctx context.Context, dir string, s state) error {
	final := filepath.Join(dir, DBFile)
	tmp := final + ".tmp"
	_ = os.Remove(tmp)
	_ = os.Remove(tmp + ".wal")
	connector, err := duckdb.NewConnector(tmp, nil)
	if err != nil {
		return fmt.Errorf("local database: %w", err)
	}
	db := sql.OpenDB(connector)
	ids := make([]string, 0, len(s.Tables))
	for id := range s.Tables {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		src := filepath.Join(dir, ParquetDir, id+".parquet")
		if len(s.Tables[id].Parts) > 0 {
			src = filepath.Join(dir, ParquetDir, id, "*.parquet")
		}
		q := fmt.Sprintf(`CREATE VIEW %s AS SELECT * FROM read_parquet(%s)`, ident(id), literal(src))
		if _, err := db.ExecContext(ctx, q); err != nil {
			_ = db.Close()
			return fmt.Errorf("local view %s: %w", id, err)
		}
	}
	if _, err := db.ExecContext(ctx, `CHECKPOINT`); err != nil {
		_ = db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil { // DuckDB creates it world-readable
		return err
	}
	return os.Rename(tmp, final)
}

func ident(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func literal(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
