package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/agnesdata/agnes/client/sdk"
	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
)

// arrowEOS ends an Arrow IPC stream.
var arrowEOS = []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}

func (a *app) queryCmd() *cobra.Command {
	var format string
	var limit int64
	cmd := &cobra.Command{
		Use:   "query SQL",
		Short: "Run a SELECT on the server and stream the result",
		Long: `Run one SELECT over the tables you may see. Results stream as they are
produced: an aligned table by default, or --format csv, json (one object per line)
or arrow (an Arrow IPC stream on stdout). Ctrl-C cancels the query on the server.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			req := &agnesv1.QueryStreamRequest{Sql: args[0], Limit: limit, Format: agnesv1.ResultFormat_RESULT_FORMAT_JSON}
			var out resultWriter
			switch format {
			case "table":
				out = &tableWriter{w: a.out}
			case "csv":
				out = &csvWriter{w: csv.NewWriter(a.out)}
			case "json":
				out = &jsonWriter{w: a.out}
			case "arrow":
				return a.queryArrow(cmd.Context(), c, req)
			default:
				return fmt.Errorf("unknown --format %q (table, csv, json, arrow)", format)
			}
			start := time.Now()
			stream, err := c.Query.QueryStream(cmd.Context(), req)
			if err != nil {
				return interrupted(cmd.Context(), err)
			}
			defer stream.Close()
			var sum *agnesv1.QuerySummary
			for stream.Receive() {
				switch ev := stream.Msg().GetEvent().(type) {
				case *agnesv1.QueryStreamResponse_Schema:
					err = out.schema(ev.Schema)
				case *agnesv1.QueryStreamResponse_Batch:
					err = out.batch(ev.Batch)
				case *agnesv1.QueryStreamResponse_Summary:
					sum = ev.Summary
				}
				if err != nil {
					return err
				}
			}
			if err := stream.Err(); err != nil {
				return interrupted(cmd.Context(), err)
			}
			if err := out.close(); err != nil {
				return err
			}
			a.summary(sum, start)
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "table, csv, json or arrow")
	cmd.Flags().Int64Var(&limit, "limit", 0, "maximum rows (default: the server's limit)")
	return cmd
}

// queryArrow writes the result to stdout as an Arrow IPC stream, through
// the SDK's Arrow reader (no allocation per batch).
func (a *app) queryArrow(ctx context.Context, c *sdk.Client, req *agnesv1.QueryStreamRequest) error {
	start := time.Now()
	st, err := c.QueryArrow(ctx, req)
	if err != nil {
		return interrupted(ctx, err)
	}
	defer st.Close()
	if _, err := a.out.Write(st.Schema()); err != nil {
		return err
	}
	for st.Next() {
		if _, err := a.out.Write(st.Batch()); err != nil {
			return err
		}
	}
	if err := st.Err(); err != nil {
		return interrupted(ctx, err)
	}
	if _, err := a.out.Write(arrowEOS); err != nil {
		return err
	}
	a.summary(st.Summary(), start)
	return nil
}

// summary prints the row count and time on stderr.
func (a *app) summary(sum *agnesv1.QuerySummary, start time.Time) {
	if sum == nil {
		return
	}
	note := ""
	if sum.GetTruncated() {
		note = ", truncated by a limit"
	}
	fmt.Fprintf(a.err, "(%d rows, %.3f s%s)\n", sum.GetRows(), time.Since(start).Seconds(), note)
}

// interrupted says "canceled" plainly when the user pressed Ctrl-C.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil || connect.CodeOf(err) == connect.CodeCanceled {
		return errors.New("query canceled")
	}
	return err
}

type resultWriter interface {
	schema(*agnesv1.QuerySchema) error
	batch(*agnesv1.QueryBatch) error
	close() error
}

// text renders one JSON value for table and CSV output.
func text(v *structpb.Value) string {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NullValue:
		return ""
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_BoolValue:
		if k.BoolValue {
			return "true"
		}
		return "false"
	case *structpb.Value_NumberValue:
		b, _ := json.Marshal(k.NumberValue)
		return string(b)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// tableWriter prints an aligned table. Column widths come from the header and the
// first batch, so rows print as they arrive; wider values later are cut with "…".
type tableWriter struct {
	w      io.Writer
	cols   []string
	widths []int
}

const maxCellWidth = 40

func (t *tableWriter) schema(s *agnesv1.QuerySchema) error {
	for _, c := range s.GetColumns() {
		t.cols = append(t.cols, c.GetName())
		t.widths = append(t.widths, min(utf8.RuneCountInString(c.GetName()), maxCellWidth))
	}
	return nil
}

func (t *tableWriter) batch(b *agnesv1.QueryBatch) error {
	first := t.widths != nil && t.cols != nil
	if first {
		for _, r := range b.GetRows() {
			for i, v := range r.GetValues() {
				if i < len(t.widths) {
					t.widths[i] = min(max(t.widths[i], utf8.RuneCountInString(text(v))), maxCellWidth)
				}
			}
		}
		t.line(t.cols)
		sep := make([]string, len(t.cols))
		for i, w := range t.widths {
			sep[i] = strings.Repeat("-", w)
		}
		t.line(sep)
		t.cols = nil
	}
	for _, r := range b.GetRows() {
		cells := make([]string, len(r.GetValues()))
		for i, v := range r.GetValues() {
			cells[i] = text(v)
		}
		t.line(cells)
	}
	return nil
}

func (t *tableWriter) line(cells []string) {
	var buf bytes.Buffer
	for i, c := range cells {
		w := maxCellWidth
		if i < len(t.widths) {
			w = t.widths[i]
		}
		if utf8.RuneCountInString(c) > w {
			c = string([]rune(c)[:w-1]) + "…"
		}
		if i > 0 {
			buf.WriteString("  ")
		}
		buf.WriteString(c)
		if i < len(cells)-1 {
			buf.WriteString(strings.Repeat(" ", w-utf8.RuneCountInString(c)))
		}
	}
	buf.WriteByte('\n')
	_, _ = t.w.Write(buf.Bytes())
}

func (t *tableWriter) close() error {
	if t.cols != nil { // no batch at all: still show the header
		return t.batch(&agnesv1.QueryBatch{})
	}
	return nil
}

type csvWriter struct{ w *csv.Writer }

func (c *csvWriter) schema(s *agnesv1.QuerySchema) error {
	var names []string
	for _, col := range s.GetColumns() {
		names = append(names, col.GetName())
	}
	return c.w.Write(names)
}

func (c *csvWriter) batch(b *agnesv1.QueryBatch) error {
	for _, r := range b.GetRows() {
		rec := make([]string, len(r.GetValues()))
		for i, v := range r.GetValues() {
			rec[i] = text(v)
		}
		if err := c.w.Write(rec); err != nil {
			return err
		}
	}
	c.w.Flush()
	return c.w.Error()
}

func (c *csvWriter) close() error { c.w.Flush(); return c.w.Error() }

// jsonWriter writes one JSON object per row, keys in column order.
type jsonWriter struct {
	w    io.Writer
	cols [][]byte // column names, JSON-encoded
}

func (j *jsonWriter) schema(s *agnesv1.QuerySchema) error {
	for _, c := range s.GetColumns() {
		name, _ := json.Marshal(c.GetName())
		j.cols = append(j.cols, name)
	}
	return nil
}

func (j *jsonWriter) batch(b *agnesv1.QueryBatch) error {
	var buf bytes.Buffer
	for _, r := range b.GetRows() {
		buf.WriteByte('{')
		for i, v := range r.GetValues() {
			if i >= len(j.cols) {
				break
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(j.cols[i])
			buf.WriteByte(':')
			val, err := v.MarshalJSON()
			if err != nil {
				return err
			}
			buf.Write(val)
		}
		buf.WriteString("}\n")
	}
	_, err := j.w.Write(buf.Bytes())
	return err
}

func (j *jsonWriter) close() error { return nil }
