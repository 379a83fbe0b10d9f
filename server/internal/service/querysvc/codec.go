package querysvc

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/gen/agnes/v1/agnesv1connect"
)

// Rows leave in their wire form. The Query service's handlers send a
// message: either a protobuf message, which the service's codecs marshal
// exactly as connect's own would, or what the service has already encoded (a
// whole unary answer, a batch of JSON rows, a group of Arrow batches) in the
// form the client reads, which the codec hands to connect as it is: no copy.
// The form comes from the request's Content-Type; a codec refuses an encoding
// of the other form with an error rather than send it. Every encoding is a
// slice of its own, freshly allocated and never written again once handed
// over, so nothing depends on what connect does with it afterwards (it may
// keep it in its buffer pool).

// message is what the Query service's handlers send.
type message struct {
	msg  proto.Message // marshalled by the codec, or
	form form          // the form of
	wire []byte        // an encoding made by the service
}

// formOf is the form a request's Content-Type asks for: application/json
// (Connect unary), application/connect+json, application/grpc+json,
// application/grpc-web+json are JSON; anything else is protobuf.
func formOf(h http.Header) form {
	mt, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	if mt == "application/json" || strings.HasSuffix(mt, "+json") {
		return formJSON
	}
	return formProto
}

// codec is connect's protobuf or JSON codec (same options, same errors),
// except for a message the service encoded itself. It has no MarshalAppend:
// connect would copy every encoding into a buffer of its own.
type codec struct {
	name string
	form form
}

var errNotProto = errors.New("not a proto.Message")

func (c codec) Name() string   { return c.name }
func (c codec) IsBinary() bool { return c.form == formProto }

func (c codec) Marshal(m any) ([]byte, error) {
	pm, wire, err := c.unwrap(m)
	switch {
	case err != nil:
		return nil, err
	case pm == nil:
		return wire, nil
	case c.form == formJSON:
		return protojson.MarshalOptions{}.Marshal(pm)
	}
	return proto.Marshal(pm)
}

// unwrap returns the protobuf message to marshal, or the encoding the
// service made (an error if it is not in the codec's form).
func (c codec) unwrap(m any) (proto.Message, []byte, error) {
	if w, ok := m.(*message); ok {
		switch {
		case w.msg != nil:
			return w.msg, nil, nil
		case w.form != c.form:
			return nil, nil, fmt.Errorf("marshal: the answer is encoded as %s and the client reads %s", w.form, c.form)
		}
		return nil, w.wire, nil
	}
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, nil, fmt.Errorf("marshal %T: %w", m, errNotProto)
	}
	return pm, nil, nil
}

func (c codec) Unmarshal(data []byte, m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return fmt.Errorf("unmarshal into %T: %w", m, errNotProto)
	}
	var err error
	switch {
	case c.form == formProto:
		err = proto.Unmarshal(data, pm)
	case len(data) == 0:
		return errors.New("zero-length payload is not a valid JSON object")
	default:
		err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, pm)
	}
	if err != nil {
		return fmt.Errorf("unmarshal into %T: %w", m, err)
	}
	return nil
}

// codecs are connect's codec names, with the form each reads.
var codecs = []codec{{"proto", formProto}, {"json", formJSON}, {"json; charset=utf-8", formJSON}}

// Handler returns the Query service's Connect, gRPC and gRPC-Web handler,
// and the path to mount it on (what agnesv1connect.NewQueryServiceHandler
// does, with the service's codecs and message type).
func (s *Service) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	methods := agnesv1.File_agnes_v1_query_proto.Services().ByName("QueryService").Methods()
	with := append([]connect.HandlerOption{}, opts...)
	for _, c := range codecs {
		with = append(with, connect.WithCodec(c))
	}
	query := connect.NewUnaryHandler(agnesv1connect.QueryServiceQueryProcedure, s.queryRPC,
		connect.WithSchema(methods.ByName("Query")), connect.WithHandlerOptions(with...))
	stream := connect.NewServerStreamHandler(agnesv1connect.QueryServiceQueryStreamProcedure, s.queryStreamRPC,
		connect.WithSchema(methods.ByName("QueryStream")), connect.WithHandlerOptions(with...))
	return "/agnes.v1.QueryService/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case agnesv1connect.QueryServiceQueryProcedure:
			query.ServeHTTP(w, r)
		case agnesv1connect.QueryServiceQueryStreamProcedure:
			stream.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
