package sdk

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
)

// The batch codec decodes every stream message as proto does; a batch's
// Arrow bytes are copied out of the message it was given (connect may reuse
// that buffer) into the codec's own buffer, reused from batch to batch.
func TestBatchCodecDecodesAsProto(t *testing.T) {
	row, _ := structpb.NewList([]any{1, "a", nil})
	msgs := []*agnesv1.QueryStreamResponse{
		{Event: &agnesv1.QueryStreamResponse_Schema{Schema: &agnesv1.QuerySchema{
			Columns: []*agnesv1.Column{{Name: "id", Type: "BIGINT"}}, ArrowSchema: []byte("schema"), Format: agnesv1.ResultFormat_RESULT_FORMAT_ARROW}}},
		{Event: &agnesv1.QueryStreamResponse_Batch{Batch: &agnesv1.QueryBatch{ArrowBatch: []byte("first batch"), RowCount: 7}}},
		{Event: &agnesv1.QueryStreamResponse_Batch{Batch: &agnesv1.QueryBatch{ArrowBatch: []byte("second"), RowCount: 3}}},
		{Event: &agnesv1.QueryStreamResponse_Batch{Batch: &agnesv1.QueryBatch{Rows: []*structpb.ListValue{row, row}, RowCount: 2}}},
		{Event: &agnesv1.QueryStreamResponse_Batch{Batch: &agnesv1.QueryBatch{}}},
		{Event: &agnesv1.QueryStreamResponse_Summary{Summary: &agnesv1.QuerySummary{Rows: 12, Bytes: 99, ElapsedMs: 5, Truncated: true}}},
		{},
	}
	c := &batchCodec{}
	var last []byte
	for _, want := range msgs {
		data, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got := &agnesv1.QueryStreamResponse{}
		if err := c.Unmarshal(data, got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("decoded %v, want %v", got, want)
		}
		if b := got.GetBatch().GetArrowBatch(); len(b) > 0 {
			if inside(b, data) {
				t.Fatal("a batch's bytes point into the message connect owns")
			}
			if last != nil && &b[0] != &last[0] {
				t.Fatal("a batch did not reuse the codec's buffer")
			}
			last = b
		}
	}
	if err := c.Unmarshal([]byte{0x12, 0x05, 0x0a}, &agnesv1.QueryStreamResponse{}); err == nil {
		t.Fatal("a truncated message decoded without an error")
	}
}

// inside reports whether b lies within data's memory.
func inside(b, data []byte) bool {
	for i := range data {
		if &data[i] == &b[0] {
			return i+len(b) <= len(data)
		}
	}
	return false
}
