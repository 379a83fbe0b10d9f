package sqlguard

import (
	"bufio"
	"database/sql"
	"fmt"
	"os"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"
)

func TestExplore(t *testing.T) {
	f := os.Getenv("EXPLORE")
	if f == "" {
		t.Skip()
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if os.Getenv("EXPLORE_SQL") != "" {
		rows, err := db.Query(os.Getenv("EXPLORE_SQL"))
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			rows.Scan(ptrs...)
			fmt.Println(vals...)
		}
		return
	}
	fh, _ := os.Open(f)
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		q := sc.Text()
		if q == "" {
			continue
		}
		var s string
		err := db.QueryRow("SELECT json_serialize_sql(?::VARCHAR)::VARCHAR", q).Scan(&s)
		fmt.Printf("=== %s\n%v %s\n", q, err, s)
	}
}
