package bqfake

import (
	"fmt"
	"slices"
	"strings"
)

// refreshMetadata rewrites the tables behind the metadata views (§7 of the
// reference) from the fake's datasets. Called with s.mu held.
func (s *Server) refreshMetadata() error {
	type stmt struct {
		q    string
		args []any
	}
	var stmts []stmt
	add := func(q string, args ...any) { stmts = append(stmts, stmt{q, args}) }
	regions := map[string]bool{}
	for _, ds := range s.datasets {
		info := quoteIdent(ds.id + ".INFORMATION_SCHEMA")
		add("CREATE SCHEMA IF NOT EXISTS " + info)
		add("CREATE OR REPLACE TABLE " + info + `.COLUMNS (table_catalog VARCHAR, table_schema VARCHAR,
			table_name VARCHAR, column_name VARCHAR, ordinal_position BIGINT, is_nullable VARCHAR, data_type VARCHAR,
			is_partitioning_column VARCHAR, clustering_ordinal_position BIGINT)`)
		add("CREATE OR REPLACE TABLE " + info + `.TABLES (table_catalog VARCHAR, table_schema VARCHAR,
			table_name VARCHAR, table_type VARCHAR, creation_time TIMESTAMPTZ, ddl VARCHAR)`)
		add("CREATE OR REPLACE TABLE " + quoteIdent(ds.id) + `.__TABLES__ (project_id VARCHAR, dataset_id VARCHAR,
			table_id VARCHAR, creation_time BIGINT, last_modified_time BIGINT, row_count BIGINT, size_bytes BIGINT, type BIGINT)`)
		for _, t := range ds.tables {
			for i, f := range t.Schema {
				nullable := "YES"
				if f.Mode == "REQUIRED" {
					nullable = "NO"
				}
				partitioning := "NO"
				if strings.EqualFold(f.Name, t.PartitionField) {
					partitioning = "YES"
				}
				var clustering any
				if k := slices.Index(t.Clustering, f.Name); k >= 0 {
					clustering = int64(k + 1)
				}
				add("INSERT INTO "+info+".COLUMNS VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", s.Project, ds.id, t.ID, f.Name,
					int64(i+1), nullable, googleSQLType(f), partitioning, clustering)
			}
			kind, code := map[string]string{"VIEW": "VIEW", "MATERIALIZED_VIEW": "MATERIALIZED VIEW",
				"EXTERNAL": "EXTERNAL", "SNAPSHOT": "SNAPSHOT"}[t.Type], int64(1)
			if kind == "" {
				kind = "BASE TABLE"
			}
			switch t.Type {
			case "VIEW":
				code = 2
			case "EXTERNAL":
				code = 3
			}
			add("INSERT INTO "+info+".TABLES VALUES (?, ?, ?, ?, ?, ?)", s.Project, ds.id, t.ID, kind, t.Created, ddl(s.Project, ds.id, t))
			rows, size := int64(len(t.Rows)), t.NumBytes
			if t.Type == "VIEW" {
				rows, size = 0, 0
			}
			ms := t.Created.UnixMilli()
			add("INSERT INTO "+quoteIdent(ds.id)+".__TABLES__ VALUES (?, ?, ?, ?, ?, ?, ?, ?)", s.Project, ds.id, t.ID,
				ms, ms, rows, size, code)
		}
		region := "region-" + strings.ToLower(ds.location) + ".INFORMATION_SCHEMA"
		if !regions[region] {
			regions[region] = true
			add("CREATE SCHEMA IF NOT EXISTS " + quoteIdent(region))
			add("CREATE OR REPLACE TABLE " + quoteIdent(region) + `.TABLE_STORAGE (project_id VARCHAR, table_schema VARCHAR,
				table_name VARCHAR, total_rows BIGINT, active_logical_bytes BIGINT, long_term_logical_bytes BIGINT)`)
		}
	}
	for _, ds := range s.datasets {
		region := quoteIdent("region-" + strings.ToLower(ds.location) + ".INFORMATION_SCHEMA")
		for _, t := range ds.tables {
			if t.Type != "VIEW" {
				add("INSERT INTO "+region+".TABLE_STORAGE VALUES (?, ?, ?, ?, ?, 0)", s.Project, ds.id, t.ID,
					int64(len(t.Rows)), t.NumBytes)
			}
		}
	}
	for _, st := range stmts {
		if _, err := s.db.Exec(st.q, st.args...); err != nil {
			return fmt.Errorf("bqfake: metadata: %w", err)
		}
	}
	return nil
}

func ddl(project, ds string, t *Table) string {
	name := "`" + project + "." + ds + "." + t.ID + "`"
	if t.Type == "VIEW" {
		return "CREATE VIEW " + name + " AS " + t.View
	}
	cols := make([]string, len(t.Schema))
	for i, f := range t.Schema {
		cols[i] = f.Name + " " + googleSQLType(f)
	}
	return "CREATE TABLE " + name + " (" + strings.Join(cols, ", ") + ")"
}
