package pushdown

import (
	"errors"
	"testing"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/server/internal/store"
)

func TestRef(t *testing.T) {
	for _, tc := range []struct {
		bucket, table, want string
	}{
		{"sales", "orders", "proj-1.sales.orders"},
		{"", "sales.orders", "proj-1.sales.orders"},
		{"", "other-proj.sales.orders", "other-proj.sales.orders"},
		{"sales", "Orders 2026-01", "proj-1.sales.Orders 2026-01"},
	} {
		got, err := Ref("proj-1", &store.RegisteredTable{Bucket: tc.bucket, SourceTable: tc.table})
		if err != nil || got != tc.want {
			t.Errorf("Ref(%q, %q) = %q, %v; want %q", tc.bucket, tc.table, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ bucket, table string }{
		{"sales", ""}, {"", "orders"}, {"sa.les", "orders"}, {"sales", "or`ders"}, {"sales", "a\nb"}, {"", "BAD_P.sales.orders"},
	} {
		_, err := Ref("proj-1", &store.RegisteredTable{Bucket: tc.bucket, SourceTable: tc.table})
		var in *connectors.InputError
		if !errors.As(err, &in) {
			t.Errorf("Ref(%q, %q): %v, want an input error", tc.bucket, tc.table, err)
		}
	}
}

func TestSplit(t *testing.T) {
	remote := map[string]Table{"orders": {ID: "orders", Source: "bq"}, "people": {ID: "people", Source: "bq2"},
		"events": {ID: "events", Source: "bq"}}
	local := func(n string) bool { return n == "local_t" || n == "orders" }
	got, missing, err := Split([]string{"events", "orders"}, remote, local)
	if err != nil || missing != "" || len(got) != 2 {
		t.Errorf("two remote tables of one source: %v %q %v", got, missing, err)
	}
	if got, _, err := Split([]string{"local_t"}, remote, local); err != nil || got != nil {
		t.Errorf("local only: %v %v", got, err)
	}
	var mixed *MixedError
	if _, _, err := Split([]string{"local_t", "orders"}, remote, local); !errors.As(err, &mixed) || len(mixed.Local) != 1 {
		t.Errorf("local and remote: %v", err)
	}
	if _, _, err := Split([]string{"orders", "people"}, remote, local); !errors.As(err, &mixed) || len(mixed.Local) != 0 {
		t.Errorf("two sources: %v", err)
	}
	if _, missing, _ := Split([]string{"gone"}, remote, local); missing != "gone" {
		t.Errorf("missing = %q", missing)
	}
}
