package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/agnesdata/agnes/client/sdk"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
	"github.com/agnesdata/agnes/internal/procfs"
)

// Scenario K: a unary answer of 1 M rows × 9 columns, through POST
// /api/query and the Connect Query RPC, against the streams of the same rows.

// unaryRows is how many rows K asks for (fewer if big is smaller).
const unaryRows = 1_000_000

func unarySQL(rows int64) string {
	return fmt.Sprintf(`SELECT id, customer_id, amount, category, ts, id * 2 AS id2, amount * 2 AS amount2,
		upper(category) AS category_upper, ts::DATE AS day FROM big LIMIT %d`, rows)
}

// RESTUnary runs POST /api/query and reads the whole answer, counting its
// bytes; the rows are not decoded (as the stream's client does not decode
// them), the row count and truncation are read from the answer's tail.
func (a *Agnes) RESTUnary(ctx context.Context, sql string, limit int64) (StreamResult, error) {
	var r StreamResult
	res, err := a.post(ctx, "/api/query", map[string]any{"sql": sql, "limit": limit})
	if err != nil {
		return r, err
	}
	defer res.Body.Close()
	r.Compressed = res.Uncompressed
	buf := make([]byte, 1<<20)
	var tail []byte
	for {
		n, err := res.Body.Read(buf)
		r.Bytes += int64(n)
		tail = append(tail, buf[:n]...)
		if len(tail) > 4096 {
			tail = append(tail[:0], tail[len(tail)-1024:]...)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return r, err
		}
	}
	m := answerTail.FindSubmatch(tail)
	if m == nil {
		return r, fmt.Errorf("answer ends without row_count: %.200q", tail)
	}
	r.Rows, _ = strconv.ParseInt(string(m[1]), 10, 64)
	r.Truncated = string(m[2]) == "true"
	return r, nil
}

var answerTail = regexp.MustCompile(`\],"row_count":(\d+),"truncated":(true|false),"column_types":\[[^\]]*\]\}\s*$`)

// rowCounter is a Query answer received without decoding its rows: the
// protobuf is walked, rows counted, row_count and truncated read.
type rowCounter struct {
	rows, rowCount, bytes int64
	truncated             bool
}

// countingCodec is the protobuf codec of a client that receives answers
// into a rowCounter.
type countingCodec struct{}

func (countingCodec) Name() string { return "proto" }

func (countingCodec) Marshal(m any) ([]byte, error) { return proto.Marshal(m.(proto.Message)) }

func (countingCodec) Unmarshal(data []byte, m any) error {
	c, ok := m.(*rowCounter)
	if !ok {
		return proto.Unmarshal(data, m.(proto.Message))
	}
	*c = rowCounter{bytes: int64(len(data))}
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		data = data[n:]
		if typ == protowire.VarintType && (num == 3 || num == 4) {
			v, m := protowire.ConsumeVarint(data)
			if m < 0 {
				return protowire.ParseError(m)
			}
			if num == 3 {
				c.rowCount = int64(v)
			} else {
				c.truncated = v != 0
			}
			data = data[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, data)
		if m < 0 {
			return protowire.ParseError(m)
		}
		if num == 2 {
			c.rows++
		}
		data = data[m:]
	}
	return nil
}

// ConnectUnary runs the Query RPC over Connect (protobuf) and receives the
// answer without decoding its rows.
func ConnectUnary(ctx context.Context, c *sdk.Client, token, sql string, limit int64) (StreamResult, error) {
	client := connect.NewClient[agnesv1.QueryRequest, rowCounter](c.HTTP, c.BaseURL+agnesv1connect.QueryServiceQueryProcedure,
		connect.WithCodec(countingCodec{}), connect.WithInterceptors(sdk.BearerAuth(token)))
	res, err := client.CallUnary(ctx, connect.NewRequest(&agnesv1.QueryRequest{Sql: sql, Limit: limit}))
	if err != nil {
		return StreamResult{}, err
	}
	m := res.Msg
	if m.rows != m.rowCount {
		return StreamResult{}, fmt.Errorf("answer has %d rows, row_count says %d", m.rows, m.rowCount)
	}
	return StreamResult{Rows: m.rows, Bytes: m.bytes, Truncated: m.truncated}, nil
}

// ConnectUnaryGenerated runs the Query RPC through the generated client,
// which decodes every value into a structpb.Value.
func ConnectUnaryGenerated(ctx context.Context, c *sdk.Client, sql string, limit int64) (StreamResult, error) {
	res, err := c.Query.Query(ctx, &agnesv1.QueryRequest{Sql: sql, Limit: limit})
	if err != nil {
		return StreamResult{}, err
	}
	return StreamResult{Rows: int64(len(res.GetRows())), Bytes: int64(proto.Size(res)), Truncated: res.GetTruncated()}, nil
}

// unary is scenario K: 1 M rows × 9 columns as one answer through REST and
// Connect, next to the NDJSON and Arrow streams of the same SQL, with the
// server's peak RSS growth of each run (and of four REST answers at once).
// As in C, every run gets a freshly started server (-fresh-server), so no
// run inherits another's memory.
func (r *run) unary(ctx context.Context) error {
	rows := min(int64(unaryRows), r.data.Rows)
	sql := unarySQL(rows)
	const (
		vStream  = "REST NDJSON stream"
		vREST    = "REST POST /api/query"
		vArrow   = "Arrow stream (Connect, SDK Arrow reader)"
		vConnect = "Connect unary Query (protobuf, rows walked, not decoded)"
		vGen     = "Connect unary Query (generated client, every value a structpb.Value)"
		vFour    = "4 × REST POST /api/query at once"
		parallel = 4
	)
	type acc struct {
		growth []int64
		bytes  int64
	}
	stats := map[string]*acc{}
	restarts := 0
	check := func(res StreamResult, err error) (StreamResult, error) {
		if err == nil && (res.Rows != rows || res.Truncated) {
			err = fmt.Errorf("got %d rows (truncated %v), want %d", res.Rows, res.Truncated, rows)
		}
		return res, err
	}
	measure := func(name string, fn func(context.Context) (StreamResult, error)) variant {
		stats[name] = &acc{}
		return variant{name: name, run: func(ctx context.Context) error {
			base, err := procfs.RSS(r.main.Pid)
			if err != nil {
				return err
			}
			smp := procfs.WatchRSS(r.main.Pid, 20*time.Millisecond)
			res, err := check(fn(ctx))
			peak := smp.Stop()
			a := stats[name]
			a.growth, a.bytes = append(a.growth, peak-base), res.Bytes
			return err
		}}
	}
	token := func() string { return r.main.Token }
	vs := []variant{
		measure(vStream, func(ctx context.Context) (StreamResult, error) { return r.a.RESTStream(ctx, sql) }),
		measure(vREST, func(ctx context.Context) (StreamResult, error) { return r.a.RESTUnary(ctx, sql, rows) }),
		measure(vArrow, func(ctx context.Context) (StreamResult, error) {
			return ConnectArrow(ctx, r.a.Connect(r.cfg.Connect), sql)
		}),
		measure(vConnect, func(ctx context.Context) (StreamResult, error) {
			return ConnectUnary(ctx, r.a.Connect(r.cfg.Connect), token(), sql, rows)
		}),
		measure(vGen, func(ctx context.Context) (StreamResult, error) {
			return ConnectUnaryGenerated(ctx, r.a.Connect(r.cfg.Connect), sql, rows)
		}),
		measure(vFour, func(ctx context.Context) (StreamResult, error) {
			var wg sync.WaitGroup
			results, errs := make([]StreamResult, parallel), make([]error, parallel)
			for i := range parallel {
				wg.Go(func() { results[i], errs[i] = check(r.a.RESTUnary(ctx, sql, rows)) })
			}
			wg.Wait()
			return results[0], errors.Join(errs...)
		}),
	}
	samples := map[string]Sample{}
	for round := range r.cfg.ItersStream {
		for j := range vs {
			v := vs[(round+j)%len(vs)]
			if r.cfg.FreshServer {
				restarts++
				if err := r.restartMain(ctx, fmt.Sprintf("K%d", restarts)); err != nil {
					return err
				}
				if _, err := ConnectQuery(ctx, r.a.H1, `SELECT count(*) FROM big`, 0); err != nil {
					return fmt.Errorf("warm-up: %w", err)
				}
			}
			_, _ = waitCPUQuiet(r.main.Pid, 300*time.Millisecond, 1, 10*time.Second)
			start := time.Now()
			if err := v.run(ctx); err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			samples[v.name] = append(samples[v.name], time.Since(start))
		}
	}
	for _, v := range vs {
		a := stats[v.name]
		r.rep.timing("K unary 1M × 9", v.name, samples[v.name], fmt.Sprintf("%s answer; server RSS growth max %s (median %s)",
			mb(a.bytes), mb(slices.Max(a.growth)), mb(medianInt(a.growth))))
	}
	scen := fmt.Sprintf("K. %s rows × 9 columns, one answer", rowsLabel(rows))
	size := stats[vREST].bytes
	bound := 3*size + 64<<20
	x := ratio(samples[vREST].Median(), samples[vStream].Median())
	r.rep.add(Row{Scenario: scen, Metric: "wall, REST POST /api/query / REST NDJSON stream of the same SQL (medians)",
		Agnes: ms(samples[vREST].Median()), Baseline: ms(samples[vStream].Median()), Ratio: fmt.Sprintf("%.2f×", x), Target: "≤ 1.5×", Result: passIf(x <= 1.5)})
	g := slices.Max(stats[vREST].growth)
	r.rep.add(Row{Scenario: scen, Metric: fmt.Sprintf("server peak RSS growth (max over runs), REST POST /api/query; answer %s", mb(size)),
		Agnes: mb(g), Baseline: "—", Ratio: fmt.Sprintf("%.2f× the answer", float64(g)/float64(size)), Target: "≤ 3 × answer + 64 MB = " + mb(bound), Result: passIf(g <= bound)})
	g4 := slices.Max(stats[vFour].growth)
	r.rep.add(Row{Scenario: scen, Metric: "server peak RSS growth (max over runs), 4 × REST POST /api/query at once",
		Agnes: mb(g4), Baseline: "—", Ratio: fmt.Sprintf("%.2f× one answer", float64(g4)/float64(size)), Target: "≤ 4 × (3 × answer + 64 MB) = " + mb(4*bound), Result: passIf(g4 <= 4*bound)})
	y := ratio(samples[vConnect].Median(), samples[vArrow].Median())
	r.rep.add(Row{Scenario: scen, Metric: "wall, Connect unary Query (protobuf) / Arrow stream of the same SQL (medians)",
		Agnes: ms(samples[vConnect].Median()), Baseline: ms(samples[vArrow].Median()), Ratio: fmt.Sprintf("%.2f×", y), Target: "≤ 2×", Result: passIf(y <= 2)})
	r.rep.add(Row{Scenario: "K. (context)", Metric: "server peak RSS growth (max over runs), Connect unary Query; answer " + mb(stats[vConnect].bytes),
		Agnes: mb(slices.Max(stats[vConnect].growth)), Baseline: "—", Ratio: fmt.Sprintf("%.2f× the answer", float64(slices.Max(stats[vConnect].growth))/float64(stats[vConnect].bytes)), Target: "—", Result: Info})
	r.rep.add(Row{Scenario: "K. (context)", Metric: "wall, Connect unary Query through the generated client (structpb) / Arrow stream",
		Agnes: ms(samples[vGen].Median()), Baseline: ms(samples[vArrow].Median()), Ratio: fmt.Sprintf("%.2f×", ratio(samples[vGen].Median(), samples[vArrow].Median())), Target: "—", Result: Info})
	r.rep.add(Row{Scenario: "K. (context)", Metric: "wall, 4 × REST POST /api/query at once (all four done) / one",
		Agnes: ms(samples[vFour].Median()), Baseline: ms(samples[vREST].Median()), Ratio: fmt.Sprintf("%.2f×", ratio(samples[vFour].Median(), samples[vREST].Median())), Target: "—", Result: Info})
	fresh := "on the same, long-running main server"
	if r.cfg.FreshServer {
		fresh = fmt.Sprintf("each on a freshly started main server (%d restarts; logs agnes-many-K<n>.log), warmed up with one count(*) on big", restarts)
	}
	r.rep.note("K: `%s` (the same SQL for every variant), %d rounds, variants in rotating order, %s. The REST client reads the answer without decoding its rows and takes row_count and truncated from its tail, as the NDJSON client counts lines; the Connect client walks the protobuf answer (rows counted, row_count checked) without decoding values, as the Arrow client does not decode the IPC; the generated client's figure, which decodes every value, is a context row. RSS growth = peak VmRSS (sampled every 20 ms) during a run − VmRSS just before it.",
		oneLine(sql), r.cfg.ItersStream, fresh)
	return nil
}

// oneLine squeezes SQL onto one line for the report.
func oneLine(s string) string {
	return string(regexp.MustCompile(`\s+`).ReplaceAll([]byte(s), []byte(" ")))
}
