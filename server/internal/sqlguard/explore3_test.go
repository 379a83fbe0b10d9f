package sqlguard

import (
	"bufio"
	"database/sql"
	"fmt"
	"os"
	"testing"
)

func TestExplore3(t *testing.T) {
	f := os.Getenv("EXPLORE3")
	if f == "" {
		t.Skip()
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, s := range []string{"CREATE TABLE b AS SELECT 'TABLE_b' AS x", "CREATE TABLE t AS SELECT 'TABLE_t' AS x", "CREATE TABLE x AS SELECT 'TABLE_x' AS x"} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	fh, _ := os.Open(f)
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		q := sc.Text()
		if q == "" {
			continue
		}
		fmt.Printf("=== %s\n", q)
		rows, err := db.Query(q)
		if err != nil {
			fmt.Println("  ERR", err)
			continue
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			rows.Scan(ptrs...)
			fmt.Println("  ", vals)
		}
		rows.Close()
	}
}
