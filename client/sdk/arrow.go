package sdk

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
)

// ArrowStream reads a query's result as Arrow IPC, batch by batch, the way
// Arrow readers do: the bytes of a batch stay valid only until the next call
// to Next (or Close). In exchange, a result of any size is received into one
// buffer of the reader's, reused for every batch, instead of an allocation
// per batch: the generated QueryStream gives every message its own, and for
// a large result the client then spends more CPU on allocating and
// collecting those buffers than on receiving them.
//
//	s, err := c.QueryArrow(ctx, &agnesv1.QueryStreamRequest{Sql: sql})
//	defer s.Close()
//	w.Write(s.Schema())
//	for s.Next() { w.Write(s.Batch()) }
//	err = s.Err()
type ArrowStream struct {
	stream  *connect.ServerStreamForClient[agnesv1.QueryStreamResponse]
	schema  *agnesv1.QuerySchema
	batch   *agnesv1.QueryBatch
	summary *agnesv1.QuerySummary
	err     error
}

// QueryArrow starts req as an Arrow stream (its format is set to ARROW) and
// reads up to the schema, so that errors in the query surface here.
func (c *Client) QueryArrow(ctx context.Context, req *agnesv1.QueryStreamRequest) (*ArrowStream, error) {
	req = proto.CloneOf(req)
	req.Format = agnesv1.ResultFormat_RESULT_FORMAT_ARROW
	// A client of its own: its codec owns the buffer the batches land in,
	// and only this stream uses it.
	opts := append(append([]connect.ClientOption{}, c.connect...), connect.WithCodec(&batchCodec{}))
	q := agnesv1connect.NewQueryServiceClient(c.HTTP, c.BaseURL, opts...)
	stream, err := q.QueryStream(ctx, req)
	if err != nil {
		return nil, err
	}
	s := &ArrowStream{stream: stream}
	if !s.receive() || s.schema == nil {
		err := stream.Err()
		if err == nil {
			err = errors.New("query stream: no schema before the first batch")
		}
		_ = stream.Close()
		return nil, err
	}
	return s, nil
}

// receive reads the next message, keeping what it is.
func (s *ArrowStream) receive() bool {
	if !s.stream.Receive() {
		return false
	}
	switch ev := s.stream.Msg().GetEvent().(type) {
	case *agnesv1.QueryStreamResponse_Schema:
		s.schema = ev.Schema
	case *agnesv1.QueryStreamResponse_Batch:
		s.batch = ev.Batch
	case *agnesv1.QueryStreamResponse_Summary:
		s.summary = ev.Summary
	}
	return true
}

// Columns are the result's columns, with their types.
func (s *ArrowStream) Columns() []*agnesv1.Column { return s.schema.GetColumns() }

// Schema is the Arrow IPC schema message that starts the stream.
func (s *ArrowStream) Schema() []byte { return s.schema.GetArrowSchema() }

// Next moves to the next batch. It returns false at the end of the result
// or on an error (see Err).
func (s *ArrowStream) Next() bool {
	s.batch = nil
	for s.err == nil && s.summary == nil {
		if !s.receive() {
			s.err = s.stream.Err()
			if s.err == nil {
				s.err = errors.New("query stream ended without a summary")
			}
			return false
		}
		if s.batch != nil {
			return true
		}
	}
	return false
}

// Batch is the current batch: one or more Arrow IPC record-batch messages,
// valid until the next call to Next or Close (the reader's buffer is reused). Schema followed by every Batch
// is an Arrow IPC stream (without its end-of-stream marker).
func (s *ArrowStream) Batch() []byte { return s.batch.GetArrowBatch() }

// BatchRows is the number of rows in the current batch.
func (s *ArrowStream) BatchRows() int64 { return s.batch.GetRowCount() }

// Summary is the server's account of the result, once Next returned false
// without an error.
func (s *ArrowStream) Summary() *agnesv1.QuerySummary { return s.summary }

// Err is the error that ended the stream, if any.
func (s *ArrowStream) Err() error { return s.err }

// Close ends the stream; before its end, that cancels the query on the server.
func (s *ArrowStream) Close() error { return s.stream.Close() }

// batchCodec is the binary protobuf codec, except that a batch's Arrow bytes
// are copied into one buffer of the codec's, reused for every batch, instead
// of a new allocation each time. It relies on nothing but connect's Codec
// interface: the message connect hands to Unmarshal is not kept. Everything
// else is decoded by proto, field by field (a message is the concatenation
// of its fields).
type batchCodec struct{ buf []byte }

const (
	fieldResponseBatch   = 2 // QueryStreamResponse.batch
	fieldBatchArrowBatch = 1 // QueryBatch.arrow_batch
)

func (*batchCodec) Name() string { return "proto" }

func (*batchCodec) Marshal(m any) ([]byte, error) {
	msg, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto.Message", m)
	}
	return proto.Marshal(msg)
}

func (c *batchCodec) Unmarshal(data []byte, m any) error {
	res, ok := m.(*agnesv1.QueryStreamResponse)
	if !ok {
		msg, ok := m.(proto.Message)
		if !ok {
			return fmt.Errorf("%T is not a proto.Message", m)
		}
		return proto.Unmarshal(data, msg)
	}
	res.Reset()
	return eachField(data, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
		if num != fieldResponseBatch || typ != protowire.BytesType {
			return merge(field, res)
		}
		b := res.GetBatch()
		if b == nil {
			b = &agnesv1.QueryBatch{}
			res.Event = &agnesv1.QueryStreamResponse_Batch{Batch: b}
		}
		return eachField(value, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
			if num != fieldBatchArrowBatch || typ != protowire.BytesType {
				return merge(field, b)
			}
			c.buf = append(c.buf[:0], value...)
			b.ArrowBatch = c.buf
			return nil
		})
	})
}

// merge decodes one field's encoding into msg, as proto would within a
// whole message.
func merge(field []byte, msg proto.Message) error {
	return proto.UnmarshalOptions{Merge: true}.Unmarshal(field, msg)
}

// eachField calls fn with every field of an encoded message: its number, wire
// type, whole encoding, and (for length-delimited fields) its contents.
func eachField(data []byte, fn func(num protowire.Number, typ protowire.Type, field, value []byte) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		var value []byte
		var m int
		if typ == protowire.BytesType {
			value, m = protowire.ConsumeBytes(data[n:])
		} else {
			m = protowire.ConsumeFieldValue(num, typ, data[n:])
		}
		if m < 0 {
			return protowire.ParseError(m)
		}
		if err := fn(num, typ, data[:n+m], value); err != nil {
			return err
		}
		data = data[n+m:]
	}
	return nil
}
