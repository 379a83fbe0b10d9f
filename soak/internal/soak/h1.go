package soak

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/agnesdata/agnes/internal/procfs"
)

// memoryLimit is the DuckDB memory_limit of H1: DuckDB reads "1GB" as 10⁹ bytes.
const (
	memoryLimitText  = "1GB"
	memoryLimitBytes = 1_000_000_000
)

// h1Query is one attempt to make the server allocate without bound.
type h1Query struct {
	name string
	sql  string
	// refused: the sandbox must answer 400 naming the limit (says; default
	// query.max_builder_size). Otherwise the query may finish or be stopped
	// by another limit (DuckDB's memory_limit): it is bounded when the
	// server's RSS stays bounded.
	refused bool
	says    string
}

func h1Queries(z Sizes) []h1Query {
	return []h1Query{
		{"list_resize, literal size", "SELECT length(list_resize([1], 100000000))", true, ""},
		{"repeat, literal size", "SELECT length(repeat('x', 100000000))", true, ""},
		{"scalar range(5e7)", "SELECT len(range(50000000))", true, ""},
		{"lpad, literal size", "SELECT length(lpad('x', 100000000, 'y'))", true, ""},
		{"rpad, literal size", "SELECT length(rpad('x', 100000000, 'y'))", true, ""},
		{"generate_series as a list", "SELECT len(generate_series(1, 50000000))", true, ""},
		{"list_resize, size from a subquery", "SELECT length(list_resize([1], (SELECT 100000000)))", true, ""},
		{"repeat, size from a subquery", "SELECT length(repeat('x', (SELECT 100000000)))", true, ""},
		{"range, bound from a subquery", "SELECT len(range((SELECT 50000000)))", true, "at most 100000 elements"},
		{"lpad, size from a column", "SELECT max(length(lpad('x', n, 'y'))) FROM (SELECT 100000000 AS n)", true, ""},
		{"nested builders", "SELECT length(list_resize(list_resize([1], 1000), 100000000))", true,
			"may not take the result of another list or string builder"},
		{"CTE feeding repeat", "WITH s AS (SELECT 100000000 AS n) SELECT length(repeat('x', n)) FROM s", true, ""},
		{"CTE over rows feeding list_resize",
			"WITH s AS (SELECT i * 1000 AS n FROM range(1000000) t(i)) SELECT sum(length(list_resize([1], n))) FROM s", true, ""},
		{"repeat inside a lambda", "SELECT len(list_transform([100000000], x -> repeat('x', x)))", true, ""},
		// Bounded rather than refused: builders at the limit over many rows,
		// and aggregates that grow with the rows (DuckDB's memory_limit).
		{"repeat at the limit over many rows",
			fmt.Sprintf("SELECT sum(length(repeat('x', 99999 + i %% 2))) FROM range(%d) t(i)", z.BuilderRows), false, ""},
		{"list() of many rows", fmt.Sprintf("SELECT length(list(i)) FROM range(%d) t(i)", z.ListRows), false, ""},
		{"count(DISTINCT) of many strings",
			fmt.Sprintf("SELECT count(DISTINCT i::VARCHAR || repeat('y', 40)) FROM range(%d) t(i)", z.DistinctRows), false, ""},
		{"string_agg of builders at the limit",
			fmt.Sprintf("SELECT length(string_agg(repeat('x', 99999 + i %% 2), '')) FROM range(%d) t(i)", z.StringAggRows), false, ""},
	}
}

// runH1: the allocation-heavy builders of H1, as a signed-in user with no
// grants, against a server with a small memory_limit.
func runH1(ctx context.Context, e *env) error {
	config := fmt.Sprintf(`demo: false
query:
  memory_limit: %s
  max_temp_size: 2GB
  max_builder_size: 100000
  timeout: 5m
`, memoryLimitText)
	s, err := e.start(ctx, config)
	if err != nil {
		return err
	}
	defer s.Stop()
	_, tokens, err := setup(ctx, s, "nogrants")
	if err != nil {
		return err
	}
	c := NewClient(s.URL, "")
	token := tokens["nogrants"]
	res, err := c.Query(ctx, token, "SELECT 1", 0)
	if err != nil {
		return fmt.Errorf("warm-up SELECT 1: %w", err)
	}
	if res.Status != http.StatusOK {
		return fmt.Errorf("warm-up SELECT 1: HTTP %d %s", res.Status, res.Detail())
	}
	base, err := s.RSS()
	if err != nil {
		return err
	}
	watch := procfs.WatchRSS(s.Pid(), 20*time.Millisecond)
	defer watch.Stop()
	t := e.sc.table("Queries (in order, one at a time, user without grants)", "query", "SQL", "HTTP", "answer", "took", "peak RSS growth so far")
	var refusedOK, refusedN, boundedOK, boundedN int
	var afterBuilders int64 // peak RSS growth once the refused builders have run
	for _, q := range h1Queries(e.Sizes) {
		if !q.refused && afterBuilders == 0 {
			afterBuilders = max(watch.Peak()-base, 1)
		}
		start := time.Now()
		res, err := c.Query(ctx, token, q.sql, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", q.name, err)
		}
		took := time.Since(start)
		answer := res.Detail()
		if res.Status == http.StatusOK {
			answer = "rows: " + string(res.Body)
		}
		if len(answer) > 160 {
			answer = answer[:160] + "…"
		}
		t.row(q.name, q.sql, fmt.Sprint(res.Status), answer, ms(took), mib(watch.Peak()-base))
		if q.refused {
			refusedN++
			says := cmp.Or(q.says, "query.max_builder_size")
			if res.Status == http.StatusBadRequest && strings.Contains(res.Detail(), says) {
				refusedOK++
			} else {
				e.sc.note("%s was not refused: HTTP %d %s", q.name, res.Status, answer)
			}
			continue
		}
		boundedN++
		// Finished, or stopped by DuckDB's memory limit with a 400 saying so.
		if res.Status == http.StatusOK || (res.Status == http.StatusBadRequest && strings.Contains(res.Detail(), "Out of Memory")) {
			boundedOK++
		} else {
			e.sc.note("%s: HTTP %d %s", q.name, res.Status, answer)
		}
	}
	growth := watch.Stop() - base
	e.sc.target("H1 builders refused", "400 naming the limit (query.max_builder_size, its value or the builder rule) for each",
		fmt.Sprintf("%d of %d", refusedOK, refusedN), refusedOK == refusedN)
	e.sc.target("row-heavy queries bounded", "finished, or stopped by memory_limit (400)",
		fmt.Sprintf("%d of %d", boundedOK, boundedN), boundedOK == boundedN)
	bound := int64(memoryLimitBytes * 11 / 10)
	want := "≤ memory_limit " + memoryLimitText + " + 10% = " + mib(bound)
	e.sc.target("server RSS growth, H1 builders", want, fmt.Sprintf("%s (from %s)", mib(afterBuilders), mib(base)), afterBuilders <= bound)
	e.sc.target("server RSS growth, all queries (the row-heavy ones after the builders)", want,
		fmt.Sprintf("%s (from %s)", mib(growth), mib(base)), growth <= bound)
	if !s.Alive() {
		e.sc.target("server alive", "running", "exited", false)
	}
	return nil
}
