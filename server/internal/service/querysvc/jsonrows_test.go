package querysvc

import (
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func benchRecord(n int) arrow.RecordBatch {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "customer_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64},
		{Name: "category", Type: arrow.BinaryTypes.String},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.Int64Builder).Append(int64(i % 1000))
		b.Field(2).(*array.Float64Builder).Append(float64(i%97) * 1.25)
		b.Field(3).(*array.StringBuilder).Append("c" + string(rune('0'+i%10)))
		b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(base.Add(time.Duration(i%86400) * time.Second).UnixMicro()))
	}
	return b.NewRecordBatch()
}

// BenchmarkAppendRows is the REST JSON stream's encoder on the benchmark's table shape.
func BenchmarkAppendRows(b *testing.B) {
	rec := benchRecord(2048)
	defer rec.Release()
	types := []string{"BIGINT", "BIGINT", "DOUBLE", "VARCHAR", "TIMESTAMP"}
	enc := newRowEncoder(rec, types)
	var buf []byte
	b.SetBytes(0)
	for b.Loop() {
		buf = buf[:0]
		for i := range int(rec.NumRows()) {
			buf = enc.appendRow(buf, i)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*int(rec.NumRows())), "ns/row")
}

func TestFastTimeFormatsMatchTime(t *testing.T) {
	for _, ts := range []time.Time{
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 4, 5, 6, 7, 500000000, time.UTC),
		time.Date(2000, 2, 29, 23, 59, 59, 123456000, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 1000, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(1600, 3, 1, 12, 0, 0, 0, time.UTC),
	} {
		want := appendTime(nil, ts, "2006-01-02 15:04:05.999999")
		got := appendTimestamp(nil, ts.UnixMicro(), false, func() time.Time { return ts }, "2006-01-02 15:04:05.999999")
		if string(got) != string(want) {
			t.Errorf("%v: got %s, want %s", ts, got, want)
		}
		zwant := appendTime(nil, ts, "2006-01-02 15:04:05.999999Z07:00")
		zgot := appendTimestamp(nil, ts.UnixMicro(), true, func() time.Time { return ts }, "2006-01-02 15:04:05.999999Z07:00")
		if string(zgot) != string(zwant) {
			t.Errorf("%v zoned: got %s, want %s", ts, zgot, zwant)
		}
	}
	for days := int64(-800000); days < 3000000; days += 997 {
		ts := time.Unix(days*86400, 0).UTC()
		if got, want := string(appendDate(nil, days, ts)), ts.Format(time.DateOnly); got != want {
			t.Fatalf("day %d: got %s, want %s", days, got, want)
		}
	}
}

func TestAppendDecimal(t *testing.T) {
	for _, c := range []struct {
		v     int64
		scale int
		want  string
	}{
		{632250, 2, `"6322.50"`}, {-5, 3, `"-0.005"`}, {42, 0, `"42"`}, {0, 2, `"0.00"`}, {7, 1, `"0.7"`},
		{-123456789, 4, `"-12345.6789"`}, {-9223372036854775808, 2, `"-92233720368547758.08"`},
	} {
		if got := string(appendDecimal(nil, c.v, c.scale)); got != c.want {
			t.Errorf("%d scale %d: got %s, want %s", c.v, c.scale, got, c.want)
		}
	}
}
