package sqlguard_test

import (
	"errors"
	"testing"

	"github.com/agnesdata/agnes/server/internal/sqlguard"
)

// FuzzCheck: Check never panics, answers the same query the same way, and an
// accepted query only ever reports views the catalog knows.
func FuzzCheck(f *testing.F) {
	for _, tc := range attacks {
		f.Add(tc.query)
	}
	for _, tc := range accepted {
		f.Add(tc.query)
	}
	c, cat := newChecker(f), newCatalog()
	known := map[string]bool{}
	for _, v := range corpusViews {
		known[v] = true
	}
	f.Fuzz(func(t *testing.T, query string) {
		got, err := c.Check(t.Context(), query, cat)
		again, errAgain := c.Check(t.Context(), query, cat)

		var rej, rejAgain *sqlguard.Error
		switch {
		case err == nil:
			if errAgain != nil {
				t.Fatalf("accepted, then rejected with %v", errAgain)
			}
			if len(got.Tables) != len(again.Tables) {
				t.Fatalf("tables differ between runs: %v vs %v", got.Tables, again.Tables)
			}
			for i, table := range got.Tables {
				if !known[table] {
					t.Fatalf("accepted query reports %q, not a catalog view", table)
				}
				if again.Tables[i] != table {
					t.Fatalf("tables differ between runs: %v vs %v", got.Tables, again.Tables)
				}
			}
		case errors.As(err, &rej):
			if !errors.As(errAgain, &rejAgain) || *rej != *rejAgain {
				t.Fatalf("rejections differ between runs: %v vs %v", err, errAgain)
			}
			if rej.Message == "" {
				t.Fatalf("rejection %v without a message", rej.Reason)
			}
		default:
			// The parser DB must keep working whatever the input.
			t.Fatalf("internal error: %v", err)
		}
	})
}
