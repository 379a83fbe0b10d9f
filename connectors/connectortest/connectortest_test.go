package connectortest_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/connectortest"
	"github.com/agnesdata/agnes/connectors/extract"
)

// fake is the smallest well-behaved connector: tables are SQL queries;
// "events" can be partitioned by a column; "deals" is remote.
type fake struct{ tables map[string]string }

func (fake) Type() string { return "fake" }

func (f fake) Discover(ctx context.Context) ([]connectors.Discovered, error) {
	var out []connectors.Discovered
	for _, name := range []string{"items", "events"} {
		out = append(out, connectors.Discovered{ID: name, Name: name, SourceTable: name})
	}
	return out, nil
}

func (f fake) Extract(ctx context.Context, spec connectors.TableSpec, w *extract.Writer) (extract.Table, error) {
	if err := ctx.Err(); err != nil {
		return extract.Table{}, err
	}
	if spec.SourceTable == "deals" {
		return extract.Table{Meta: extract.Meta{TableName: spec.ID, QueryMode: extract.ModeRemote},
			View: "SELECT * FROM crm.main.deals"}, nil
	}
	q, ok := f.tables[spec.SourceTable]
	if !ok {
		return extract.Table{}, fmt.Errorf("fake %s: %w", spec.SourceTable, connectors.ErrNotFound)
	}
	if spec.Strategy == connectors.StrategyPartitioned {
		for _, part := range []string{"a", "b"} {
			if _, err := w.WriteQuery(ctx, spec.ID+"/"+part, "SELECT * FROM ("+q+") WHERE "+spec.PartitionBy+" = '"+part+"'"); err != nil {
				return extract.Table{}, err
			}
		}
		return w.PartitionedTable(ctx, spec.ID, spec.Description)
	}
	file, err := w.WriteQuery(ctx, spec.ID, q)
	if err != nil {
		return extract.Table{}, err
	}
	return extract.Table{Meta: file.Meta(spec.Description)}, nil
}

func TestRunOnAFakeConnector(t *testing.T) {
	checked := false
	connectortest.Run(t, func(t *testing.T) connectors.Connector {
		return fake{tables: map[string]string{
			"items":  "SELECT range AS id FROM range(5)",
			"events": "SELECT range AS id, CASE WHEN range < 3 THEN 'a' ELSE 'b' END AS kind FROM range(7)",
		}}
	},
		connectortest.Case{
			Spec: connectors.TableSpec{ID: "events_by_kind", SourceTable: "events", Strategy: connectors.StrategyPartitioned, PartitionBy: "kind"},
			Check: func(t *testing.T, db *sql.DB, tbl extract.Table) {
				checked = true
				if len(tbl.Parts) != 2 || tbl.Parts[0].Rows != 3 || tbl.Parts[1].Rows != 4 {
					t.Errorf("parts = %+v", tbl.Parts)
				}
			},
		},
		connectortest.Case{Spec: connectors.TableSpec{ID: "deals", SourceTable: "deals"}, Remote: true},
	)
	if !checked {
		t.Error("Check did not run")
	}
}
