package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/agnesdata/agnes/client/sdk"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/internal/procfs"
)

func queryReq(sql string) *agnesv1.QueryRequest { return &agnesv1.QueryRequest{Sql: sql} }

// Variant names.
const (
	vIn   = "in-process duckdb-go"
	vH1   = "Agnes Connect HTTP/1.1"
	vH2C  = "Agnes Connect h2c"
	vREST = "Agnes REST"
	vPl   = "plain DuckDB-over-HTTP"
)

// aggregate is scenarios A and G: the 10-row aggregate over big, measured
// in process, over Connect (HTTP/1.1 and h2c), over REST and through the
// plain HTTP server, interleaved.
func (r *run) aggregate(ctx context.Context) error {
	const rows = 10
	vs := []variant{
		{name: vIn, run: func(ctx context.Context) error { n, err := r.in.Query(ctx, aggSQL); return expectRows(rows, n, err) }},
		{name: vH1, run: func(ctx context.Context) error {
			n, err := ConnectQuery(ctx, r.a.H1, aggSQL, 0)
			return expectRows(rows, n, err)
		}},
		{name: vH2C, run: func(ctx context.Context) error {
			n, err := ConnectQuery(ctx, r.a.H2C, aggSQL, 0)
			return expectRows(rows, n, err)
		}},
		{name: vREST, run: func(ctx context.Context) error {
			n, err := r.a.RESTQuery(ctx, aggSQL, 0)
			return expectRows(rows, n, err)
		}},
	}
	if r.plain != nil {
		vs = append(vs, variant{name: vPl, run: func(ctx context.Context) error {
			n, err := PlainQuery(ctx, r.plainC, r.plain.URL, aggSQL)
			return expectRows(rows, n, err)
		}})
	}
	s, err := interleave(ctx, vs, r.cfg.WarmAgg, r.cfg.ItersAgg)
	if err != nil {
		return err
	}
	for _, v := range vs {
		r.rep.timing("A/G aggregate", v.name, s[v.name], "")
	}
	in := s[vIn].Median()
	if r.cfg.want("A") {
		for _, v := range []string{vH1, vH2C, vREST} {
			x := ratio(s[v].Median(), in)
			r.rep.add(Row{Scenario: "A. 10-row aggregate over big", Metric: "p50, " + strings.TrimPrefix(v, "Agnes ") + " / in-process",
				Agnes: ms(s[v].Median()), Baseline: ms(in), Ratio: fmt.Sprintf("%.3f×", x), Target: "≤ 1.10×", Result: passIf(x <= 1.10)})
		}
	}
	if r.cfg.want("G") {
		if r.plain == nil {
			return errNoPlain
		}
		pl := s[vPl].Median()
		x := ratio(s[vREST].Median(), pl)
		r.rep.add(Row{Scenario: "G. sandbox/auth cost", Metric: "aggregate p50, Agnes REST / plain DuckDB-over-HTTP",
			Agnes: ms(s[vREST].Median()), Baseline: ms(pl), Ratio: fmt.Sprintf("%.3f×", x), Target: "≤ 1.05×", Result: passIf(x <= 1.05)})
		y := ratio(pl, in)
		r.rep.add(Row{Scenario: "G. (context)", Metric: "aggregate p50, plain DuckDB-over-HTTP / in-process",
			Agnes: ms(pl), Baseline: ms(in), Ratio: fmt.Sprintf("%.3f×", y), Target: "issue: 1.02–1.06×", Result: Info})
	}
	return nil
}

// selectOne is scenario B: SELECT 1 end to end.
func (r *run) selectOne(ctx context.Context) error {
	vs := []variant{
		{name: vIn, run: func(ctx context.Context) error { n, err := r.in.Query(ctx, select1); return expectRows(1, n, err) }},
		{name: vH1, run: func(ctx context.Context) error {
			n, err := ConnectQuery(ctx, r.a.H1, select1, 0)
			return expectRows(1, n, err)
		}},
		{name: vH2C, run: func(ctx context.Context) error {
			n, err := ConnectQuery(ctx, r.a.H2C, select1, 0)
			return expectRows(1, n, err)
		}},
		{name: vREST, run: func(ctx context.Context) error {
			n, err := r.a.RESTQuery(ctx, select1, 0)
			return expectRows(1, n, err)
		}},
	}
	if r.plain != nil {
		vs = append(vs, variant{name: vPl, run: func(ctx context.Context) error {
			n, err := PlainQuery(ctx, r.plainC, r.plain.URL, select1)
			return expectRows(1, n, err)
		}})
	}
	s, err := interleave(ctx, vs, r.cfg.WarmSelect1, r.cfg.ItersSelect1)
	if err != nil {
		return err
	}
	in := s[vIn].Median()
	for _, v := range vs {
		r.rep.timing("B SELECT 1", v.name, s[v.name], "")
	}
	for _, c := range []struct {
		v      string
		target time.Duration
	}{{vH1, 500 * time.Microsecond}, {vH2C, 500 * time.Microsecond}, {vREST, time.Millisecond}} {
		d := s[c.v].Median() - in
		r.rep.add(Row{Scenario: "B. SELECT 1 end to end", Metric: "p50, " + strings.TrimPrefix(c.v, "Agnes ") + " − in-process",
			Agnes: ms(s[c.v].Median()), Baseline: ms(in), Ratio: signedMs(d), Target: "≤ " + signedMs(c.target), Result: passIf(d <= c.target)})
	}
	if r.plain != nil {
		d := s[vPl].Median() - in
		r.rep.add(Row{Scenario: "B. (context)", Metric: "p50, plain DuckDB-over-HTTP − in-process",
			Agnes: ms(s[vPl].Median()), Baseline: ms(in), Ratio: signedMs(d), Target: "—", Result: Info})
	}
	return nil
}

// attachCount is scenario D: the same small query on a server with one
// extract and on the main server with all of them, interleaved.
func (r *run) attachCount(ctx context.Context) error {
	t0 := time.Now()
	one, err := StartServer(ctx, "agnes-one", ServerOptions{Bin: r.cfg.ServerBin, DataDir: r.data.OneDir,
		LogPath: filepath.Join(r.cfg.OutDir, "logs", "agnes-one.log")})
	if err != nil {
		return err
	}
	startup := time.Since(t0)
	defer r.cleanup(one)
	r.rep.note("D: the one-extract server (pid %d) started in %s; both servers were running during D.", one.Pid, startup.Round(time.Millisecond))
	c1 := NewAgnes(one.URL, one.Token).Connect(r.cfg.Connect)
	cN := r.a.Connect(r.cfg.Connect)
	n1, nN := "1 extract", fmt.Sprintf("%d extracts", r.data.Sources())
	vs := []variant{
		{name: n1, run: func(ctx context.Context) error {
			n, err := ConnectQuery(ctx, c1, pointSQL, 0)
			return expectRows(10, n, err)
		}},
		{name: nN, run: func(ctx context.Context) error {
			n, err := ConnectQuery(ctx, cN, pointSQL, 0)
			return expectRows(10, n, err)
		}},
	}
	s, err := interleave(ctx, vs, r.cfg.WarmSmall, r.cfg.ItersSmall)
	if err != nil {
		return err
	}
	for _, v := range vs {
		r.rep.timing("D attach count", "Agnes "+v.name, s[v.name], transportName(r.cfg.Connect))
	}
	x := ratio(s[nN].Median(), s[n1].Median())
	r.rep.add(Row{Scenario: fmt.Sprintf("D. %d extracts attached vs 1", r.data.Sources()), Metric: fmt.Sprintf("p50 of a 10-row query on big, %s / %s", nN, n1),
		Agnes: ms(s[nN].Median()), Baseline: ms(s[n1].Median()), Ratio: fmt.Sprintf("%.3f×", x), Target: "≤ 1.10×", Result: passIf(x <= 1.10)})
	return nil
}

// bigScan is scenario C: SELECT * FROM big as an Arrow stream over Connect
// and as NDJSON through REST, against duckdb-go's Arrow interface in process,
// with the peak RSS growth of the process doing the work. With FreshServer,
// every server run gets a freshly started main server (warmed up with one
// small query on big), so that no run inherits another's memory.
func (r *run) bigScan(ctx context.Context) error {
	type acc struct {
		growth, peak []int64
		bytes        int64
		// CPU seconds per run: the server's, and the harness's own (the
		// in-process work, or the client receiving the stream).
		serverCPU, harnessCPU []float64
	}
	stats := map[string]*acc{}
	const (
		vArrowIn  = "in-process duckdb-go Arrow + IPC encode"
		vArrow    = "Agnes Arrow stream (Connect, SDK Arrow reader)"
		vArrowGen = "Agnes Arrow stream (Connect, generated client)"
		vJSONREST = "Agnes JSON stream (REST NDJSON)"
	)
	restarts := 0
	serverPrep := func(ctx context.Context) error {
		if r.cfg.FreshServer {
			restarts++
			if err := r.restartMain(ctx, fmt.Sprintf("C%d", restarts)); err != nil {
				return err
			}
			if _, err := ConnectQuery(ctx, r.a.H1, `SELECT count(*) FROM big`, 0); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
		}
		_, _ = waitCPUQuiet(r.main.Pid, 300*time.Millisecond, 1, 10*time.Second)
		return nil
	}
	harnessPrep := func(context.Context) error {
		runtime.GC()
		debug.FreeOSMemory()
		return nil
	}
	measure := func(name string, server bool, fn func(context.Context) (StreamResult, error)) variant {
		stats[name] = &acc{}
		prep := harnessPrep
		if server {
			prep = serverPrep
		}
		undo := func() { // the CPU times; RSS growth counts for every run
			a := stats[name]
			a.harnessCPU = a.harnessCPU[:len(a.harnessCPU)-1]
			if server {
				a.serverCPU = a.serverCPU[:len(a.serverCPU)-1]
			}
		}
		return variant{name: name, prep: prep, undo: undo, run: func(ctx context.Context) error {
			pid := os.Getpid()
			if server {
				pid = r.main.Pid
			}
			base, err := procfs.RSS(pid)
			if err != nil {
				return err
			}
			srv0, _ := procfs.CPUTicks(r.main.Pid)
			own0, _ := procfs.CPUTicks(os.Getpid())
			smp := procfs.WatchRSS(pid, 20*time.Millisecond)
			res, err := fn(ctx)
			peak := smp.Stop()
			srv1, _ := procfs.CPUTicks(r.main.Pid)
			own1, _ := procfs.CPUTicks(os.Getpid())
			a := stats[name]
			a.growth, a.peak, a.bytes = append(a.growth, peak-base), append(a.peak, peak), res.Bytes
			a.harnessCPU = append(a.harnessCPU, float64(own1-own0)/procfs.ClockTicks)
			if server {
				a.serverCPU = append(a.serverCPU, float64(srv1-srv0)/procfs.ClockTicks)
			}
			if err == nil && (res.Rows != r.data.Rows || res.Truncated) {
				err = fmt.Errorf("got %d rows (truncated %v), want %d", res.Rows, res.Truncated, r.data.Rows)
			}
			return err
		}}
	}
	base := measure(vArrowIn, false, func(ctx context.Context) (StreamResult, error) {
		res, err := r.in.Arrow(ctx, scanSQL)
		return StreamResult{Rows: res.Rows, Bytes: res.Bytes}, err
	})
	vs := []variant{
		measure(vArrow, true, func(ctx context.Context) (StreamResult, error) {
			return ConnectArrow(ctx, r.a.Connect(r.cfg.Connect), scanSQL)
		}),
	}
	if r.cfg.StreamGenerated {
		vs = append(vs, measure(vArrowGen, true, func(ctx context.Context) (StreamResult, error) {
			return ConnectArrowGenerated(ctx, r.a.Connect(r.cfg.Connect), scanSQL)
		}))
	}
	vs = append(vs, measure(vJSONREST, true, func(ctx context.Context) (StreamResult, error) {
		res, err := r.a.RESTStream(ctx, scanSQL)
		if err == nil && res.Compressed {
			r.restCompressed = true
		}
		return res, err
	}))
	s, pairs, rerun, err := pairedWithPrep(ctx, base, vs, r.cfg.ItersStream, r.cfg.StreamSlow)
	if err != nil {
		return err
	}
	for _, v := range append([]variant{base}, vs...) {
		a := stats[v.name]
		who := "server"
		if v.name == vArrowIn {
			who = "harness"
		}
		cpu := fmt.Sprintf("harness CPU per run median %.2f s", medianF(a.harnessCPU))
		if len(a.serverCPU) > 0 {
			cpu = fmt.Sprintf("server CPU per run median %.2f s, harness (client) CPU %.2f s", medianF(a.serverCPU), medianF(a.harnessCPU))
		}
		r.rep.timing("C SELECT * FROM big", v.name, s[v.name], fmt.Sprintf("%s payload; %s RSS growth max %s (median %s), peak RSS %s; %s",
			mb(a.bytes), who, mb(slices.Max(a.growth)), mb(medianInt(a.growth)), mb(slices.Max(a.peak)), cpu))
	}
	in, arrowW, jsonW := s[vArrowIn].Median(), s[vArrow].Median(), s[vJSONREST].Median()
	x := medianF(pairRatios(pairs[vArrow]))
	r.rep.add(Row{Scenario: "C. SELECT * FROM big (" + rowsLabel(r.data.Rows) + " rows)", Metric: "wall, Arrow stream over Connect (SDK Arrow reader) / in-process Arrow + IPC run just before it (median of the per-round ratios)",
		Agnes: ms(arrowW), Baseline: ms(in), Ratio: fmt.Sprintf("%.2f×", x), Target: "≤ 1.3×", Result: passIf(x <= 1.3)})
	y := ratio(jsonW, arrowW)
	r.rep.add(Row{Scenario: "C. SELECT * FROM big (" + rowsLabel(r.data.Rows) + " rows)", Metric: "wall, JSON through REST (NDJSON) / Arrow stream",
		Agnes: ms(jsonW), Baseline: ms(arrowW), Ratio: fmt.Sprintf("%.2f×", y), Target: "≤ 3×", Result: passIf(y <= 3)})
	for _, v := range []string{vArrow, vJSONREST} {
		g := slices.Max(stats[v].growth)
		r.rep.add(Row{Scenario: "C. SELECT * FROM big (" + rowsLabel(r.data.Rows) + " rows)", Metric: "server peak RSS growth (max over runs), " + strings.TrimPrefix(v, "Agnes "),
			Agnes: mb(g), Baseline: "—", Ratio: "—", Target: "≤ 256 MB", Result: passIf(g <= 256<<20)})
	}
	srvCPU, cliCPU, inCPU := medianF(stats[vArrow].serverCPU), medianF(stats[vArrow].harnessCPU), medianF(stats[vArrowIn].harnessCPU)
	r.rep.add(Row{Scenario: "C. (context)", Metric: "CPU per run (median): Arrow stream's server (+ its client, the harness) / in-process",
		Agnes: fmt.Sprintf("%.2f s (+%.2f s)", srvCPU, cliCPU), Baseline: fmt.Sprintf("%.2f s", inCPU),
		Ratio: fmt.Sprintf("%.2f× (%.2f× with the client)", srvCPU/inCPU, (srvCPU+cliCPU)/inCPU), Target: "—", Result: Info})
	r.rep.add(Row{Scenario: "C. (context)", Metric: "wall, Arrow stream (SDK Arrow reader): ratio of the two medians (unpaired), and the per-round ratios",
		Agnes: ms(arrowW), Baseline: ms(in), Ratio: fmt.Sprintf("%.2f× (per round: %s)", ratio(arrowW, in), pairList(pairs[vArrow])), Target: "—", Result: Info})
	if r.cfg.StreamGenerated {
		z := medianF(pairRatios(pairs[vArrowGen]))
		r.rep.add(Row{Scenario: "C. (context)", Metric: "wall, Arrow stream through the generated client (every message its own allocation) / in-process run just before it (median of the per-round ratios)",
			Agnes: ms(s[vArrowGen].Median()), Baseline: ms(in), Ratio: fmt.Sprintf("%.2f×", z), Target: "—", Result: Info})
		r.rep.add(Row{Scenario: "C. (context)", Metric: "CPU per run (median), generated client's stream: server (+ client)",
			Agnes: fmt.Sprintf("%.2f s (+%.2f s)", medianF(stats[vArrowGen].serverCPU), medianF(stats[vArrowGen].harnessCPU)), Baseline: "—", Ratio: "—", Target: "—", Result: Info})
	}
	if r.cfg.StreamSlow > 0 {
		for _, v := range vs {
			if n := len(s[v.name]); n < r.cfg.ItersStream {
				r.rep.note("C: %q ran %d time(s) instead of %d: its first run took longer than %s (-stream-slow).", v.name, n, r.cfg.ItersStream, r.cfg.StreamSlow)
			}
		}
	}
	fresh := "each server run on the same, long-running main server, after its CPU went quiet"
	if r.cfg.FreshServer {
		fresh = fmt.Sprintf("each server run on a freshly started main server (%d restarts; logs agnes-many-C<n>.log), warmed up with one count(*) on big, after its CPU went quiet", restarts)
	}
	r.rep.note("C: every server run comes right after an in-process run (its pair); %d pair(s) during which the host stole more than %.0f%% of the CPU time were run again (at most %d); the RSS growth counts every run.", rerun, 100*maxSteal, r.cfg.ItersStream)
	r.rep.note("C: RSS growth = peak VmRSS (sampled every 20 ms) during a run − VmRSS just before it; %s. The in-process growth is the harness's own (after a GC). The REST client reads and counts the NDJSON without decoding it; the Arrow clients receive every message without decoding the IPC. REST response compressed: %v.", fresh, r.restCompressed)
	return nil
}

// pairedWithPrep runs iters rounds; every round takes each variant of vs in
// turn (the order rotating from round to round): its prep (untimed), then a
// run of base, then a run of the variant. Each variant's run so has a run of
// base right before it, on a machine in the same state, and the pairs hold,
// per variant, its time over that base run's, round by round. The machine's
// noise comes in phases of seconds (runs next to each other are slow
// together), so these ratios vary much less than the two samples do.
//
// The worst of that noise is the host taking the CPUs away (steal time): a
// pair during which it took more than maxSteal of the CPU time is run again,
// up to iters extra pairs in all; the pairs report the steal of each kept
// pair. A variant whose first run took longer than slow runs only once (0: no
// limit).
func pairedWithPrep(ctx context.Context, base variant, vs []variant, iters int, slow time.Duration) (_ map[string]Sample, _ map[string][]pair, rerun int, _ error) {
	out, pairs := map[string]Sample{}, map[string][]pair{}
	timed := func(v variant) (time.Duration, error) {
		if v.prep != nil {
			if err := v.prep(ctx); err != nil {
				return 0, fmt.Errorf("%s: prepare: %w", v.name, err)
			}
		}
		start := time.Now()
		if err := v.run(ctx); err != nil {
			return 0, fmt.Errorf("%s: %w", v.name, err)
		}
		d := time.Since(start)
		out[v.name] = append(out[v.name], d)
		return d, nil
	}
	for round := range iters {
		for j := range vs {
			v := vs[(round+j)%len(vs)]
			if slow > 0 && len(out[v.name]) > 0 && out[v.name][0] > slow {
				continue
			}
			for {
				if err := ctx.Err(); err != nil {
					return out, pairs, rerun, err
				}
				if v.prep != nil {
					if err := v.prep(ctx); err != nil {
						return out, pairs, rerun, fmt.Errorf("%s: prepare: %w", v.name, err)
					}
				}
				steal0, _ := procfs.StealTicks()
				start := time.Now()
				b, err := timed(base)
				if err != nil {
					return out, pairs, rerun, err
				}
				d, err := timed(variant{name: v.name, run: v.run}) // prepared before base
				if err != nil {
					return out, pairs, rerun, err
				}
				steal1, _ := procfs.StealTicks()
				p := pair{ratio: ratio(d, b), steal: float64(steal1-steal0) / procfs.ClockTicks / (time.Since(start).Seconds() * float64(runtime.NumCPU()))}
				if p.steal > maxSteal && rerun < iters {
					rerun++
					for _, u := range []variant{base, v} {
						out[u.name] = out[u.name][:len(out[u.name])-1]
						if u.undo != nil {
							u.undo()
						}
					}
					continue
				}
				pairs[v.name] = append(pairs[v.name], p)
				break
			}
		}
	}
	return out, pairs, rerun, nil
}

// maxSteal is the share of CPU time the host may take during a pair of runs
// before pairedWithPrep runs the pair again.
const maxSteal = 0.10

// pair is one variant run over the base run just before it.
type pair struct {
	ratio float64
	steal float64 // share of the pair's CPU time the host took
}

// pairRatios are the ratios of pairs.
func pairRatios(ps []pair) []float64 {
	rs := make([]float64, len(ps))
	for i, p := range ps {
		rs[i] = p.ratio
	}
	return rs
}

// pairList formats pairs as "1.12 (steal 2%), 1.25 (steal 14%), ...".
func pairList(ps []pair) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%.2f (steal %.0f%%)", p.ratio, 100*p.steal)
	}
	return strings.Join(parts, ", ")
}

func medianInt(v []int64) int64 {
	c := slices.Clone(v)
	slices.Sort(c)
	if len(c) == 0 {
		return 0
	}
	return c[len(c)/2]
}

// cancels is scenario E: many long queries started at once, each cancelled
// by its client after CancelAfter; measured from the last cancel until the
// server is idle: its CPU time stops growing (≤ 2 ticks over 300 ms) and a
// SELECT 1 answers within 50 ms.
func (r *run) cancels(ctx context.Context) error {
	const (
		window   = 300 * time.Millisecond
		maxTicks = 2
		prompt   = 50 * time.Millisecond
		giveUp   = 60 * time.Second
	)
	pid := r.main.Pid
	c := r.a.Connect(r.cfg.Connect)

	ticks0, err := procfs.CPUTicks(pid)
	if err != nil {
		return err
	}
	cpu := recordCPU(pid, 10*time.Millisecond)
	defer cpu.Stop()

	var cancelMu sync.Mutex
	var firstCancel, lastCancel time.Time
	codes := map[string]int{}
	var wg sync.WaitGroup
	launched := time.Now()
	for range r.cfg.Cancels {
		wg.Go(func() {
			qctx, cancel := context.WithCancel(ctx)
			defer cancel()
			timer := time.AfterFunc(r.cfg.CancelAfter, func() {
				cancelMu.Lock()
				now := time.Now()
				if firstCancel.IsZero() || now.Before(firstCancel) {
					firstCancel = now
				}
				if now.After(lastCancel) {
					lastCancel = now
				}
				cancelMu.Unlock()
				cancel()
			})
			defer timer.Stop()
			_, err := c.Query.Query(qctx, queryReq(cancelSQL))
			code := "ok"
			if err != nil {
				code = connect.CodeOf(err).String()
			}
			cancelMu.Lock()
			codes[code]++
			cancelMu.Unlock()
		})
	}
	wg.Wait()
	cancelMu.Lock()
	tCancel, tLast := firstCancel, lastCancel
	cancelMu.Unlock()
	if tCancel.IsZero() {
		return fmt.Errorf("no query was still running when it was due to be cancelled: %v", codes)
	}

	eName := fmt.Sprintf("E. %d queries cancelled after %s", r.cfg.Cancels, r.cfg.CancelAfter)
	var tCPU, tProbe time.Time
	var probes Sample
	for time.Since(tCancel) < giveUp {
		if tProbe.IsZero() {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			start := time.Now()
			_, err := c.Query.Query(pctx, queryReq(select1))
			d := time.Since(start)
			cancel()
			probes = append(probes, d)
			if err == nil && d <= prompt {
				tProbe = start
			}
		}
		if tCPU.IsZero() {
			if at, ok := quietSince(cpu.Since(tCancel), window, maxTicks); ok {
				tCPU = at
			}
		}
		if !tCPU.IsZero() && !tProbe.IsZero() {
			break
		}
		time.Sleep(20 * time.Millisecond)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	var codeList []string
	for k, v := range codes {
		codeList = append(codeList, fmt.Sprintf("%s ×%d", k, v))
	}
	slices.Sort(codeList)
	busy := float64(cpu.At(tCancel)-ticks0) / procfs.ClockTicks
	r.rep.note("E: %d queries (%q) launched at once over %s, each cancelled by its client %s after its launch; cancels from %s to %s after launch; the server used %.2f s of CPU before the first cancel; client outcomes: %s; %d SELECT 1 probes until one answered within %s (slowest %s). Idle = server CPU time grows ≤ %d ticks over %s and a SELECT 1 answers within %s; measured from the first cancel.",
		r.cfg.Cancels, cancelSQL, transportName(r.cfg.Connect), r.cfg.CancelAfter, tCancel.Sub(launched).Round(time.Millisecond), tLast.Sub(launched).Round(time.Millisecond),
		busy, strings.Join(codeList, ", "), len(probes), prompt, ms(slices.Max(probes)), maxTicks, window, prompt)
	if tCPU.IsZero() || tProbe.IsZero() {
		r.rep.add(Row{Scenario: eName, Metric: "time from the cancels until the server is idle",
			Agnes: "> " + giveUp.String(), Baseline: "—", Ratio: "—", Target: "≤ 2 s", Result: Fail})
		r.rep.note("E: not idle after %s (CPU quiet: %v, prompt SELECT 1: %v)", giveUp, !tCPU.IsZero(), !tProbe.IsZero())
		return nil
	}
	idle := max(tCPU.Sub(tCancel), tProbe.Sub(tCancel), 0)
	r.rep.add(Row{Scenario: eName, Metric: "time from the cancels until the server is idle (CPU flat and SELECT 1 prompt)",
		Agnes: ms(idle), Baseline: "—", Ratio: fmt.Sprintf("CPU flat after %s, SELECT 1 prompt after %s", ms(max(tCPU.Sub(tCancel), 0)), ms(max(tProbe.Sub(tCancel), 0))),
		Target: "≤ 2 s", Result: passIf(idle <= 2*time.Second)})
	return nil
}

// rebuilds is scenario F: POST /api/admin/rebuild repeatedly while clients
// query in a loop; every failed query counts.
func (r *run) rebuilds(ctx context.Context) error {
	loopCtx, stop := context.WithCancel(ctx)
	defer stop()
	var queries, failures atomic.Int64
	var errMu sync.Mutex
	errSeen := map[string]int{}
	sqls := []string{`SELECT count(*), sum(amount) FROM big WHERE id < 100000`}
	for i, t := range r.data.SmallTables {
		if i%7 == 0 {
			sqls = append(sqls, `SELECT k, count(*), sum(v) FROM `+t+` GROUP BY k ORDER BY k`)
		}
	}
	var wg sync.WaitGroup
	for i := range r.cfg.Clients {
		rest := i%2 == 1
		var cc *sdk.Client
		if !rest {
			cc = NewAgnes(r.main.URL, r.main.Token).Connect(r.cfg.Connect)
		}
		wg.Go(func() {
			for k := i; loopCtx.Err() == nil; k++ {
				q := sqls[k%len(sqls)]
				var err error
				if rest {
					_, err = r.a.RESTQuery(ctx, q, 0)
				} else {
					_, err = ConnectQuery(ctx, cc, q, 0)
				}
				queries.Add(1)
				if err != nil && ctx.Err() == nil {
					failures.Add(1)
					errMu.Lock()
					msg := err.Error()
					if len(msg) > 160 {
						msg = msg[:160] + "…"
					}
					errSeen[msg]++
					errMu.Unlock()
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond) // the clients are running
	var took Sample
	var gens []int64
	var rebuildErrs []string
	problems := 0
	for range r.cfg.Rebuilds {
		start := time.Now()
		g, p, err := r.a.Rebuild(ctx)
		took = append(took, time.Since(start))
		if err != nil {
			rebuildErrs = append(rebuildErrs, err.Error())
			continue
		}
		gens, problems = append(gens, g), problems+p
	}
	time.Sleep(200 * time.Millisecond)
	stop()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	r.rep.timing("F rebuild under load", "POST /api/admin/rebuild", took, fmt.Sprintf("%d clients querying (%d Connect, %d REST)", r.cfg.Clients, (r.cfg.Clients+1)/2, r.cfg.Clients/2))
	f, q := failures.Load(), queries.Load()
	r.rep.add(Row{Scenario: fmt.Sprintf("F. %d rebuilds under %d querying clients", r.cfg.Rebuilds, r.cfg.Clients), Metric: "failed queries / queries",
		Agnes: fmt.Sprintf("%d / %d", f, q), Baseline: "—", Ratio: "—", Target: "0 failed", Result: passIf(f == 0 && len(rebuildErrs) == 0)})
	r.rep.note("F: generations %v, %d rebuild problems reported, %d rebuild calls failed %v; rebuild p50 %s.", gens, problems, len(rebuildErrs), rebuildErrs, ms(took.Median()))
	for msg, n := range errSeen {
		r.rep.note("F: query error ×%d: %s", n, msg)
	}
	return nil
}

// signedMs formats a difference with its sign.
func signedMs(d time.Duration) string {
	if d < 0 {
		return "−" + ms(-d)
	}
	return "+" + ms(d)
}

// rowsLabel is 10000000 → "10M".
func rowsLabel(n int64) string {
	switch {
	case n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}
