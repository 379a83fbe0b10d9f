package connectors_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/agnesdata/agnes/connectors"
)

func TestTableID(t *testing.T) {
	for name, want := range map[string]string{
		"orders":                "orders",
		"  Sales Q1  ":          "sales_q1",
		"in.c-crm.Deals":        "in_c_crm_deals",
		"a  b":                  "a__b",
		"_x":                    "_x",
		"Tab\tName":             "tab_name",
		strings.Repeat("a", 64): strings.Repeat("a", 64),
	} {
		got, err := connectors.TableID(name)
		if err != nil || got != want {
			t.Errorf("TableID(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"", "   ", "1st", "a/b", "ä", "a;drop", `a"b`, strings.Repeat("a", 65), "_meta", "_parts", "_agnes_x", "_REMOTE_ATTACH"} {
		got, err := connectors.TableID(name)
		var ie *connectors.InputError
		if err == nil || !errors.As(err, &ie) {
			t.Errorf("TableID(%q) = %q, %v; want an InputError", name, got, err)
		}
	}
}
