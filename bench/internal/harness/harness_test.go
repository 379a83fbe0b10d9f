package harness

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestSampleStatistics(t *testing.T) {
	s := Sample{5 * time.Millisecond, 1 * time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond}
	if got := s.Median(); got != 2500*time.Microsecond {
		t.Fatalf("median of an even count: got %s", got)
	}
	s = append(s, 4*time.Millisecond)
	if got := s.Median(); got != 3*time.Millisecond {
		t.Fatalf("median: got %s", got)
	}
	if got := s.Quantile(0.9); got != 5*time.Millisecond {
		t.Fatalf("p90: got %s", got)
	}
	if got := s.Min(); got != time.Millisecond {
		t.Fatalf("min: got %s", got)
	}
	if (Sample{}).Median() != 0 {
		t.Fatal("median of nothing")
	}
}

func TestQuietSince(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	busy := []cpuSample{{at(0), 0}, {at(100), 10}, {at(200), 20}, {at(300), 21}, {at(400), 21}, {at(500), 22}}
	// From 200 ms on the process used 2 ticks: quiet for 300 ms with ≤ 2.
	if start, ok := quietSince(busy, 300*time.Millisecond, 2); !ok || !start.Equal(at(200)) {
		t.Fatalf("got %v %v, want quiet since 200 ms", start, ok)
	}
	if _, ok := quietSince(busy, 300*time.Millisecond, 1); ok {
		t.Fatal("only 200 ms with ≤ 1 tick")
	}
}

func TestInterleaveRotatesOrder(t *testing.T) {
	var order []string
	mk := func(n string) variant {
		return variant{name: n, run: func(context.Context) error { order = append(order, n); return nil }}
	}
	s, err := interleave(context.Background(), []variant{mk("a"), mk("b"), mk("c")}, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := "abc" + "bca" + "cab"
	got := ""
	for _, o := range order {
		got += o
	}
	if got != want || len(s["a"]) != 2 {
		t.Fatalf("order %s, want %s; %d timings of a", got, want, len(s["a"]))
	}
}

// Every variant run comes right after its prep and a base run, and each
// yields one pair per round (re-runs for steal replace a pair, never add one).
func TestPairedRunsBaseBeforeEachVariant(t *testing.T) {
	var order []string
	undone := 0
	mk := func(n string) variant {
		return variant{name: n,
			prep: func(context.Context) error { order = append(order, "prep-"+n); return nil },
			run:  func(context.Context) error { order = append(order, n); return nil },
			undo: func() { undone++ }}
	}
	base := variant{name: "base", run: func(context.Context) error { order = append(order, "base"); return nil }}
	s, pairs, rerun, err := pairedWithPrep(context.Background(), base, []variant{mk("a"), mk("b")}, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range order {
		if o == "a" || o == "b" {
			if i < 2 || order[i-1] != "base" || order[i-2] != "prep-"+o {
				t.Fatalf("run %d (%s) not right after its prep and a base run: %v", i, o, order)
			}
		}
	}
	if len(pairs["a"]) != 3 || len(pairs["b"]) != 3 || len(s["a"]) != 3 || len(s["base"]) != 6 {
		t.Fatalf("pairs %d/%d, samples a %d base %d; want 3/3, 3, 6", len(pairs["a"]), len(pairs["b"]), len(s["a"]), len(s["base"]))
	}
	if undone != rerun || rerun > 3 { // only a and b have an undo here
		t.Fatalf("%d re-runs, %d undos", rerun, undone)
	}
}

func TestPlainHandler(t *testing.T) {
	db, err := openMemoryDB()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := httptest.NewServer(PlainHandler(db))
	defer srv.Close()
	n, err := PlainQuery(context.Background(), srv.Client(), srv.URL, `SELECT i, i * 1.5 AS d, 'x' || i AS s FROM range(3) t(i)`)
	if err != nil || n != 3 {
		t.Fatalf("got %d rows, %v", n, err)
	}
	if _, err := PlainQuery(context.Background(), srv.Client(), srv.URL, `SELEC nonsense`); err == nil {
		t.Fatal("bad SQL answered")
	}
}

// BenchmarkInProcessSelect1 is scenario B's in-process baseline on its own.
func BenchmarkInProcessSelect1(b *testing.B) {
	db, err := openMemoryDB()
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	p := &InProc{DB: db}
	ctx := context.Background()
	for b.Loop() {
		if _, err := p.Query(ctx, select1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlainHTTPSelect1 is SELECT 1 through the plain DuckDB-over-HTTP
// handler over loopback: the HTTP floor under scenario B.
func BenchmarkPlainHTTPSelect1(b *testing.B) {
	db, err := openMemoryDB()
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	srv := httptest.NewServer(PlainHandler(db))
	defer srv.Close()
	c := &http.Client{Transport: newTransport(HTTP1)}
	ctx := context.Background()
	for b.Loop() {
		if _, err := PlainQuery(ctx, c, srv.URL, select1); err != nil {
			b.Fatal(err)
		}
	}
}
