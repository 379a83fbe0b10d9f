package cli

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agnesdata/agnes/client/sdk"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
)

func (a *app) catalogCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "catalog",
		Short: "List the tables you may see",
		RunE: a.run(func(cmd *cobra.Command, _ []string, c *sdk.Client) error {
			res, err := c.Catalog.ListCatalogTables(cmd.Context(), &agnesv1.ListCatalogTablesRequest{})
			if err != nil {
				return err
			}
			return list(a.printer(), res.GetTables(), []string{"TABLE", "ROWS", "SIZE", "SOURCE", "MODE", "LAST SYNC", "DESCRIPTION"},
				func(t *agnesv1.CatalogTable) []string {
					return []string{t.GetId(), strconv.FormatInt(t.GetRows(), 10), humanBytes(t.GetSizeBytes()), t.GetSourceType(),
						t.GetQueryMode(), when(t.GetLastSync()), cut(t.GetDescription(), 60)}
				})
		}),
	}
}

func cut(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func (a *app) describeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe TABLE",
		Short: "Show a table's columns and data profile",
		Args:  cobra.ExactArgs(1),
		RunE: a.run(func(cmd *cobra.Command, args []string, c *sdk.Client) error {
			t, err := c.Catalog.GetCatalogTable(cmd.Context(), &agnesv1.GetCatalogTableRequest{TableId: args[0]})
			if err != nil {
				return err
			}
			prof, err := c.Catalog.GetTableProfile(cmd.Context(), &agnesv1.GetTableProfileRequest{TableId: args[0]})
			if err != nil && !isNotFound(err) {
				return err
			}
			if a.jsonOut {
				return a.printer().value(map[string]any{"table": jsonOf(t.GetTable()), "profile": jsonOf(prof.GetProfile())})
			}
			tb := t.GetTable()
			fmt.Fprintf(a.out, "%s — %s\n", tb.GetId(), cmp.Or(tb.GetDescription(), "(no description)"))
			fmt.Fprintf(a.out, "%d rows, %s, source %s, %s, last sync %s\n\n", tb.GetRows(), humanBytes(tb.GetSizeBytes()),
				cmp.Or(tb.GetSourceType(), "-"), cmp.Or(tb.GetQueryMode(), "local"), when(tb.GetLastSync()))
			byName := map[string]*agnesv1.ColumnProfile{}
			for _, col := range prof.GetProfile().GetColumns() {
				byName[col.GetName()] = col
			}
			var rows [][]string
			for _, col := range tb.GetColumns() {
				p := byName[col.GetName()]
				rows = append(rows, []string{col.GetName(), col.GetType(), pct(p), distinct(p), cut(p.GetMin(), 20), cut(p.GetMax(), 20),
					mean(p), top(p)})
			}
			a.printer().table([]string{"COLUMN", "TYPE", "NULL%", "DISTINCT", "MIN", "MAX", "MEAN", "TOP VALUES"}, rows)
			if prof.GetProfile() == nil {
				fmt.Fprintln(a.out, "\n(no profile yet: it is computed after each sync)")
			}
			return nil
		}),
	}
}

func pct(p *agnesv1.ColumnProfile) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(p.GetNullPct(), 'f', 1, 64)
}

func distinct(p *agnesv1.ColumnProfile) string {
	if p == nil {
		return "-"
	}
	return "~" + strconv.FormatInt(p.GetDistinctCount(), 10)
}

func mean(p *agnesv1.ColumnProfile) string {
	if p == nil || p.Mean == nil {
		return ""
	}
	return strconv.FormatFloat(p.GetMean(), 'g', 6, 64)
}

func top(p *agnesv1.ColumnProfile) string {
	var parts []string
	for i, v := range p.GetTopValues() {
		if i == 3 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%d)", cut(v.GetValue(), 16), v.GetCount()))
	}
	return strings.Join(parts, ", ")
}
