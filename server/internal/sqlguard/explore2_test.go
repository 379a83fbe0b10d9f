package sqlguard

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
)

func summarize(v any, path string, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		if c, ok := x["class"].(string); ok {
			s := fmt.Sprintf("%s: class=%s type=%v", path, c, x["type"])
			for _, k := range []string{"function_name", "schema", "catalog", "column_names", "collation", "subquery_type", "is_operator"} {
				if val, ok := x[k]; ok {
					s += fmt.Sprintf(" %s=%v", k, val)
				}
			}
			*out = append(*out, s)
		} else if t, ok := x["type"].(string); ok {
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			s := fmt.Sprintf("%s: TYPE=%s", path, t)
			for _, k := range []string{"table_name", "schema_name", "catalog_name", "function_name"} {
				if val, ok := x[k]; ok {
					s += fmt.Sprintf(" %s=%v", k, val)
				}
			}
			s += " keys=" + strings.Join(keys, ",")
			*out = append(*out, s)
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			summarize(x[k], path+"."+k, out)
		}
	case []any:
		for i, e := range x {
			summarize(e, fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
}

func TestExplore2(t *testing.T) {
	f := os.Getenv("EXPLORE2")
	if f == "" {
		t.Skip()
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fh, _ := os.Open(f)
	sc := bufio.NewScanner(fh)
	full := os.Getenv("FULL") != ""
	for sc.Scan() {
		q := sc.Text()
		if q == "" {
			continue
		}
		var s string
		err := db.QueryRow("SELECT json_serialize_sql(?::VARCHAR)::VARCHAR", q).Scan(&s)
		fmt.Printf("=== %s\n", q)
		if err != nil {
			fmt.Println("ERR", err)
			continue
		}
		if full {
			fmt.Println(s)
		}
		var v any
		json.Unmarshal([]byte(s), &v)
		m := v.(map[string]any)
		if m["error"] == true {
			fmt.Println("ERROR:", m["error_type"], "|", m["error_message"])
			continue
		}
		var out []string
		summarize(m["statements"], "", &out)
		for _, l := range out {
			if strings.Contains(l, "TYPE=ORDER_MODIFIER") && false {
				continue
			}
			fmt.Println("  ", l)
		}
	}
}
