// Package restjson is the JSON of the REST mirror: proto field names (snake_case),
// unpopulated fields emitted, unknown request fields refused, and 64-bit integers as
// JSON numbers. The gateway uses it for every REST call; handlers that write REST
// JSON themselves (the manifest) use it too, so the two can never disagree.
package restjson

import (
	"fmt"
	"io"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Marshaler is protojson with proto field names, unpopulated fields emitted and
// unknown request fields ignored (the Python API's clients send fields this API
// does not model, e.g. `scope` on POST /auth/tokens; Connect and gRPC stay
// strict) — plus one departure: 64-bit integers are JSON
// numbers, not strings. protojson quotes them for JavaScript's sake, but REST clients
// of this API (curl, Python, agents) expect row counts and sizes as numbers, as the
// Python API sent them. It implements grpc-gateway's runtime.Marshaler.
type Marshaler struct {
	runtime.JSONPb
	int64Keys map[string]bool
}

// New returns the marshaler for the API described by services.
func New(services []protoreflect.ServiceDescriptor) *Marshaler {
	return &Marshaler{
		JSONPb: runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		},
		int64Keys: mustInt64Keys(services),
	}
}

// Marshal implements runtime.Marshaler.
func (m *Marshaler) Marshal(v any) ([]byte, error) {
	b, err := m.JSONPb.Marshal(v)
	if err != nil {
		return nil, err
	}
	return unquoteInt64(b, m.int64Keys), nil
}

// NewEncoder implements runtime.Marshaler.
func (m *Marshaler) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		b, err := m.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
}

// mustInt64Keys collects the names of every 64-bit integer field reachable from the
// services. Rewriting by name is only sound if no string field shares such a name,
// which is checked here (and by the gateway's tests) rather than assumed.
func mustInt64Keys(services []protoreflect.ServiceDescriptor) map[string]bool {
	ints, strs := map[string]bool{}, map[string]bool{}
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] || md.FullName().Parent() == "google.protobuf" {
			return
		}
		seen[md.FullName()] = true
		for i := range md.Fields().Len() {
			f := md.Fields().Get(i)
			name := string(f.Name())
			switch f.Kind() {
			case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
				protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
				ints[name] = true
			case protoreflect.StringKind, protoreflect.BytesKind:
				strs[name] = true
			case protoreflect.MessageKind:
				if f.IsMap() {
					if v := f.MapValue(); v.Kind() == protoreflect.MessageKind {
						walk(v.Message())
					} else if v.Kind() == protoreflect.StringKind {
						strs[name] = true
					}
					continue
				}
				walk(f.Message())
			}
		}
	}
	for _, sd := range services {
		for i := range sd.Methods().Len() {
			walk(sd.Methods().Get(i).Input())
			walk(sd.Methods().Get(i).Output())
		}
	}
	for name := range ints {
		if strs[name] {
			panic(fmt.Sprintf("restjson: field name %q is a 64-bit integer in one message and a string in another", name))
		}
	}
	return ints
}

// unquoteInt64 rewrites `"key": "123"` to `"key": 123` for keys in ints, in one pass
// over protojson output. Everything else is copied byte for byte.
func unquoteInt64(in []byte, ints map[string]bool) []byte {
	out := make([]byte, 0, len(in))
	i := 0
	for i < len(in) {
		c := in[i]
		if c != '"' {
			out = append(out, c)
			i++
			continue
		}
		end := stringEnd(in, i)
		str := in[i:end]
		out = append(out, str...)
		i = end
		// Is this string an object key of an int64 field followed by a quoted integer?
		j := skipSpace(in, i)
		if j >= len(in) || in[j] != ':' || !ints[string(str[1:len(str)-1])] {
			continue
		}
		k := skipSpace(in, j+1)
		if k >= len(in) || in[k] != '"' {
			continue
		}
		vend := stringEnd(in, k)
		if digits := in[k+1 : vend-1]; isInteger(digits) {
			out = append(out, in[i:k]...)
			out = append(out, digits...)
			i = vend
		}
	}
	return out
}

// stringEnd returns the index just past the JSON string starting at in[start] == '"'.
func stringEnd(in []byte, start int) int {
	for i := start + 1; i < len(in); i++ {
		switch in[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(in)
}

func skipSpace(in []byte, i int) int {
	for i < len(in) && (in[i] == ' ' || in[i] == '\n' || in[i] == '\t' || in[i] == '\r') {
		i++
	}
	return i
}

func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
