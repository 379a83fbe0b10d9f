package querysvc

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/engine"
)

var benchColumns = []engine.Column{{Name: "id", Type: "BIGINT"}, {Name: "customer_id", Type: "BIGINT"},
	{Name: "amount", Type: "DOUBLE"}, {Name: "category", Type: "VARCHAR"}, {Name: "ts", Type: "TIMESTAMP"}}

// benchRecord is n rows of the benchmark's table shape, from row start on.
func benchRecord(start, n int) arrow.RecordBatch {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "customer_id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64},
		{Name: "category", Type: arrow.BinaryTypes.String},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := start; i < start+n; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if i%7 == 0 {
			b.Field(1).(*array.Int64Builder).AppendNull()
		} else {
			b.Field(1).(*array.Int64Builder).Append(int64(i % 1000))
		}
		b.Field(2).(*array.Float64Builder).Append(float64(i%97) * 1.25)
		b.Field(3).(*array.StringBuilder).Append("c" + string(rune('0'+i%10)))
		b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(base.Add(time.Duration(i%86400) * time.Second).UnixMicro()))
	}
	return b.NewRecordBatch()
}

// fill runs an answer as the engine would: columns, schema, the batches
// (released after each call, as the engine does).
func fill(t *testing.T, a *answer, batches, rows int) {
	t.Helper()
	if err := a.Columns(benchColumns); err != nil {
		t.Fatal(err)
	}
	if err := a.Schema(nil); err != nil {
		t.Fatal(err)
	}
	for i := range batches {
		rec := benchRecord(i*rows, rows)
		err := a.Batch(rec)
		rec.Release()
		if errors.Is(err, errAnswerFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := a.drain(); err != nil {
		t.Fatal(err)
	}
}

// The protobuf answer is byte for byte what proto.Marshal writes for the
// QueryResponse the JSON answer describes, and protojson reads the JSON one
// as the same message.
func TestAnswerForms(t *testing.T) {
	j := &answer{form: formJSON, maxBytes: 1 << 40}
	fill(t, j, 5, 1000)
	p := &answer{form: formProto, maxBytes: 1 << 40}
	fill(t, p, 5, 1000)

	var body struct {
		Columns     []string `json:"columns"`
		Rows        []any    `json:"rows"`
		RowCount    int64    `json:"row_count"`
		Truncated   bool     `json:"truncated"`
		ColumnTypes []string `json:"column_types"`
	}
	var rest bytes.Buffer
	if _, err := j.WriteTo(&rest); err != nil {
		t.Fatal(err)
	}
	if int64(rest.Len()) != j.size() {
		t.Fatalf("wrote %d bytes, size says %d", rest.Len(), j.size())
	}
	if err := json.Unmarshal(rest.Bytes(), &body); err != nil {
		t.Fatalf("JSON answer: %v", err)
	}
	if body.RowCount != 5000 || len(body.Rows) != 5000 || body.Truncated || len(body.ColumnTypes) != 5 {
		t.Fatalf("JSON answer: %d rows (row_count %d), truncated %v, types %v", len(body.Rows), body.RowCount, body.Truncated, body.ColumnTypes)
	}
	rows, err := structpb.NewList(body.Rows)
	if err != nil {
		t.Fatal(err)
	}
	want := &agnesv1.QueryResponse{Columns: body.Columns, RowCount: 5000, ColumnTypes: body.ColumnTypes}
	for _, r := range rows.GetValues() {
		want.Rows = append(want.Rows, r.GetListValue())
	}
	wire, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.encoded(), wire) {
		t.Fatal("the protobuf answer differs from proto.Marshal's")
	}
	viaProtojson := &agnesv1.QueryResponse{}
	if err := protojson.Unmarshal(j.encoded(), viaProtojson); err != nil {
		t.Fatalf("protojson cannot read the JSON answer: %v", err)
	}
	if !proto.Equal(viaProtojson, want) {
		t.Fatal("protojson reads the JSON answer differently")
	}
}

// The byte limit counts the encoded rows held: the answer stops at the last
// whole row within it, marked truncated.
func TestAnswerByteLimit(t *testing.T) {
	for _, c := range []struct {
		f        form
		oneSlice bool
	}{{formJSON, false}, {formProto, false}, {formJSON, true}, {formProto, true}} {
		f := c.f
		full := &answer{form: f, maxBytes: 1 << 40}
		fill(t, full, 1, 1000)
		limit := full.bytes / 3
		a := &answer{form: f, maxBytes: limit, rowCap: 1 << 20, oneSlice: c.oneSlice}
		fill(t, a, 10, 100)
		if !a.truncated || a.rows == 0 || a.rows >= 1000 || c.oneSlice != (a.whole != nil) {
			t.Fatalf("%s: %d rows, truncated %v", f, a.rows, a.truncated)
		}
		if a.bytes > limit || a.bytes < limit-200 {
			t.Fatalf("%s: holds %d bytes for a limit of %d", f, a.bytes, limit)
		}
		res := &agnesv1.QueryResponse{}
		var err error
		if f == formJSON {
			err = protojson.Unmarshal(a.encoded(), res)
		} else {
			err = proto.Unmarshal(a.encoded(), res)
		}
		if err != nil || int64(len(res.GetRows())) != a.rows || res.GetRowCount() != a.rows || !res.GetTruncated() {
			t.Fatalf("%s: %d rows decoded (row_count %d, truncated %v): %v", f, len(res.GetRows()), res.GetRowCount(), res.GetTruncated(), err)
		}
		if last := res.GetRows()[a.rows-1].GetValues()[0].GetNumberValue(); last != float64(a.rows-1) {
			t.Fatalf("%s: last row has id %v", f, last)
		}
	}
}

// An answer handed over as one slice is gathered into one buffer as its rows
// come, sized for the row limit: the same bytes as gathering its chunks at
// the end, whether the rows fit the buffer, spill beyond it, or the server's
// budget has no room for it; every byte of the budget comes back.
func TestAnswerOneSlice(t *testing.T) {
	const batches, rows = 5, 1000
	for _, f := range []form{formJSON, formProto} {
		ref := &answer{form: f, maxBytes: 1 << 40}
		fill(t, ref, batches, rows)
		want := ref.encoded()
		for _, c := range []struct {
			name         string
			rowCap       int64
			budget       int64
			whole, spill bool
		}{
			{"fits", batches * rows, 1 << 30, true, false},
			{"spills", 2 * rows, 1 << 30, true, true},
			{"no budget for the buffer", batches * rows, int64(len(want)), false, true},
		} {
			mem := semaphore.NewWeighted(c.budget)
			a := &answer{form: f, maxBytes: 1 << 40, rowCap: c.rowCap, oneSlice: true, memory: mem}
			fill(t, a, batches, rows)
			if (a.whole != nil) != c.whole || (len(a.chunks) > 0) != c.spill {
				t.Fatalf("%s, %s: buffer %v, %d chunks", f, c.name, a.whole != nil, len(a.chunks))
			}
			held := int64(cap(a.whole))
			for _, ch := range a.chunks {
				held += int64(len(ch))
			}
			if a.held != held {
				t.Fatalf("%s, %s: counts %d bytes against the budget, holds %d", f, c.name, a.held, held)
			}
			if got := a.encoded(); !bytes.Equal(got, want) {
				t.Fatalf("%s, %s: the answer differs from its chunks gathered (%d bytes, want %d)", f, c.name, len(got), len(want))
			}
			a.free()
			if !mem.TryAcquire(c.budget) {
				t.Fatalf("%s, %s: the budget did not get all its bytes back", f, c.name)
			}
		}
	}
}

// The one buffer is sized for the row limit at the rows' size so far, never
// beyond the byte limit or maxGather.
func TestAnswerGatherSize(t *testing.T) {
	a := &answer{form: formProto, maxBytes: 1 << 40, rowCap: 1_000_000, bytes: 1000, rows: 10}
	a.columns, a.types = []string{"id"}, []string{"BIGINT"}
	over := int64(len(a.head())+len(a.tail())) + 32 + a.bytes
	for _, c := range []struct {
		name          string
		rowCap, limit int64
		min, max      int64
	}{
		{"the row limit", 1_000_000, 1 << 40, 101 * (1_000_000 - 10), 101 * (1_000_000 - 10) * 17 / 16},
		{"the byte limit", 1_000_000, 50_000, 48_000, 50_000},
		{"maxGather", 1 << 40, 1 << 40, maxGather * 15 / 16, maxGather},
		{"rows as many as the limit already", 10, 1 << 40, 0, 0},
	} {
		a.rowCap, a.maxBytes = c.rowCap, c.limit
		rows := a.gatherSize() - over
		if rows < c.min || rows > c.max {
			t.Errorf("%s: room for %d bytes of rows, want %d–%d", c.name, rows, c.min, c.max)
		}
	}
	a.maxBytes = a.bytes
	if n := a.gatherSize(); n != 0 {
		t.Errorf("no room under the byte limit: size %d, want 0", n)
	}
}

// A stream's JSON-format batch reads as the QueryStreamResponse it stands
// for, in each framing.
func TestBatchFrames(t *testing.T) {
	rec := benchRecord(0, 50)
	defer rec.Release()
	types := []string{"BIGINT", "BIGINT", "DOUBLE", "VARCHAR", "TIMESTAMP"}
	p := &agnesv1.QueryStreamResponse{}
	if err := proto.Unmarshal(encodeBatch(newRowEncoder(rec, types, formProto), frameProto, 10, 40), p); err != nil {
		t.Fatal(err)
	}
	j := &agnesv1.QueryStreamResponse{}
	if err := protojson.Unmarshal(encodeBatch(newRowEncoder(rec, types, formJSON), frameJSON, 10, 40), j); err != nil {
		t.Fatal(err)
	}
	line := encodeBatch(newRowEncoder(rec, types, formJSON), frameNDJSON, 10, 40)
	var nd struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(line, &nd); err != nil || !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("NDJSON line %q: %v", line, err)
	}
	n := &agnesv1.QueryStreamResponse{}
	if err := protojson.Unmarshal(nd.Result, n); err != nil {
		t.Fatal(err)
	}
	if p.GetBatch().GetRowCount() != 30 || len(p.GetBatch().GetRows()) != 30 || p.GetBatch().GetRows()[0].GetValues()[0].GetNumberValue() != 10 {
		t.Fatalf("protobuf batch: %v", p.GetBatch().GetRowCount())
	}
	if !proto.Equal(p, j) || !proto.Equal(p, n) {
		t.Fatal("the framings read differently")
	}
}

// A group of Arrow batches framed by the encoder is byte for byte what
// proto.Marshal writes for the same QueryStreamResponse, for lengths whose
// varints take one to four bytes, and with no rows.
func TestArrowBatchFrame(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 2 << 20} {
		for _, rows := range []int64{0, 1, 300, 1 << 40} {
			payload := bytes.Repeat([]byte{0xab}, n)
			buf := append(make([]byte, batchHeadroom, batchHeadroom+n+16), payload...) // as newGroupBuffer sizes it
			got := frameArrowBatch(buf, rows)
			want, err := proto.Marshal(&agnesv1.QueryStreamResponse{Event: &agnesv1.QueryStreamResponse_Batch{
				Batch: &agnesv1.QueryBatch{ArrowBatch: payload, RowCount: rows}}})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%d IPC bytes, %d rows: framed %d bytes, proto.Marshal %d", n, rows, len(got), len(want))
			}
			trailer := 0
			if rows != 0 {
				trailer = 1 + protowire.SizeVarint(uint64(rows))
			}
			if n > 0 && &got[len(got)-trailer-n] != &buf[batchHeadroom] {
				t.Fatalf("%d IPC bytes: the payload was moved", n)
			}
		}
	}
}

func TestCodecSendsEncodingsOfItsFormOnly(t *testing.T) {
	msg := &agnesv1.QuerySummary{Rows: 3}
	for _, c := range codecs {
		enc := &message{form: c.form, wire: []byte("encoded")}
		got, err := c.Marshal(enc)
		if err != nil || string(got) != "encoded" {
			t.Errorf("%s: %q, %v", c.name, got, err)
		}
		other := &message{form: 1 - c.form, wire: []byte("other")}
		if _, err := c.Marshal(other); err == nil {
			t.Errorf("%s sent an encoding of the other form", c.name)
		}
		// Protobuf messages, wrapped or not, marshal as connect's codecs do.
		want, _ := proto.Marshal(msg)
		if c.form == formJSON {
			want, _ = protojson.Marshal(msg)
		}
		for _, m := range []any{msg, &message{msg: msg}} {
			got, err := c.Marshal(m)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: %q, %v", c.name, got, err)
			}
		}
		back := &agnesv1.QuerySummary{}
		if err := c.Unmarshal(want, back); err != nil || back.GetRows() != 3 {
			t.Errorf("%s: unmarshal %v, %v", c.name, back, err)
		}
	}
}

func TestFormOf(t *testing.T) {
	for ct, want := range map[string]form{
		"application/proto": formProto, "application/json": formJSON, "application/json; charset=utf-8": formJSON,
		"application/connect+proto": formProto, "application/connect+json": formJSON, "application/grpc": formProto,
		"application/grpc+proto": formProto, "application/grpc+json": formJSON, "application/grpc-web+json": formJSON,
		"Application/GRPC-Web+JSON; charset=utf-8": formJSON, "application/grpc-web": formProto, "": formProto,
	} {
		h := http.Header{}
		h.Set("Content-Type", ct)
		if got := formOf(h); got != want {
			t.Errorf("%q: %s, want %s", ct, got, want)
		}
	}
}

// BenchmarkAnswer is the unary answer's encoding on the benchmark's table
// shape, per form.
func BenchmarkAnswer(b *testing.B) {
	for _, f := range []form{formJSON, formProto} {
		b.Run(strings.ToLower(f.String()), func(b *testing.B) {
			rec := benchRecord(0, 2048)
			defer rec.Release()
			a := &answer{form: f, types: []string{"BIGINT", "BIGINT", "DOUBLE", "VARCHAR", "TIMESTAMP"}}
			for b.Loop() {
				rec.Retain()
				a.encode(rec)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*int(rec.NumRows())), "ns/row")
		})
	}
}

// A protobuf row's length is written before its values in one pass, with
// the room of the previous row's: rows whose lengths need one, two, three
// or four bytes, in every order, are byte for byte proto.Marshal's.
func TestProtoRowLengths(t *testing.T) {
	lengths := []int{0, 120, 5, 200, 124, 125, 126, 127, 16380, 3, 16381, 2_100_000, 10, 300, 2_100_000, 0}
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String}, {Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	var want []byte
	for i, n := range lengths {
		s := strings.Repeat("x", n)
		b.Field(0).(*array.StringBuilder).Append(s)
		b.Field(1).(*array.Int64Builder).Append(int64(i))
		row, err := structpb.NewList([]any{s, float64(i)})
		if err != nil {
			t.Fatal(err)
		}
		m, err := proto.Marshal(&agnesv1.QueryResponse{Rows: []*structpb.ListValue{row}})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, m...)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	e := newRowEncoder(rec, []string{"VARCHAR", "BIGINT"}, formProto)
	if got := e.appendRows(nil, 0, len(lengths), false); !bytes.Equal(got, want) {
		t.Fatalf("rows differ from proto.Marshal's (%d bytes, want %d)", len(got), len(want))
	}
}

// BenchmarkAnswerScenarioK encodes a batch of the nine column types of
// make bench's scenario K (BIGINT, DECIMAL(38,2), VARCHAR, TIMESTAMP, DATE).
func BenchmarkAnswerScenarioK(b *testing.B) {
	dec := &arrow.Decimal128Type{Precision: 38, Scale: 2}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "customer_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "amount", Type: dec}, {Name: "category", Type: arrow.BinaryTypes.String},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}}, {Name: "id2", Type: arrow.PrimitiveTypes.Int64},
		{Name: "amount2", Type: dec}, {Name: "category_upper", Type: arrow.BinaryTypes.String},
		{Name: "day", Type: arrow.FixedWidthTypes.Date32},
	}, nil)
	bl := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer bl.Release()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2048 {
		bl.Field(0).(*array.Int64Builder).Append(int64(i))
		bl.Field(1).(*array.Int64Builder).Append(int64(i % 1000))
		bl.Field(2).(*array.Decimal128Builder).Append(decimal128.FromI64(int64(i * 137 % 100000)))
		bl.Field(3).(*array.StringBuilder).Append("category-" + string(rune('a'+i%10)))
		bl.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(base.Add(time.Duration(i) * time.Minute).UnixMicro()))
		bl.Field(5).(*array.Int64Builder).Append(int64(i * 2))
		bl.Field(6).(*array.Decimal128Builder).Append(decimal128.FromI64(int64(i * 274 % 100000)))
		bl.Field(7).(*array.StringBuilder).Append("CATEGORY-" + string(rune('A'+i%10)))
		bl.Field(8).(*array.Date32Builder).Append(arrow.Date32FromTime(base.AddDate(0, 0, i%365)))
	}
	rec := bl.NewRecordBatch()
	defer rec.Release()
	types := []string{"BIGINT", "BIGINT", "DECIMAL(38,2)", "VARCHAR", "TIMESTAMP", "BIGINT", "DECIMAL(38,2)", "VARCHAR", "DATE"}
	for _, f := range []form{formJSON, formProto} {
		b.Run(strings.ToLower(f.String()), func(b *testing.B) {
			a := &answer{form: f, types: types}
			for b.Loop() {
				rec.Retain()
				a.encode(rec)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*int(rec.NumRows())), "ns/row")
		})
	}
}
