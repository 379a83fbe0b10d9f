package apitest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/app"
	"github.com/agnesdata/agnes/server/internal/gateway"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

// TestEveryRPCHasAPolicy fails when an RPC is added without an access policy: such a
// method is denied to everyone, which is safe but surely not what its author meant.
func TestEveryRPCHasAPolicy(t *testing.T) {
	require.NoError(t, access.Validate(app.Services()...))
	policies := access.LoadPolicies(app.Services()...)
	n := 0
	for _, sd := range app.Services() {
		n += sd.Methods().Len()
	}
	require.Len(t, policies, n)
}

// TestEveryRPCHasARESTBinding keeps the REST mirror complete.
func TestEveryRPCHasARESTBinding(t *testing.T) {
	for _, sd := range app.Services() {
		for i := range sd.Methods().Len() {
			m := sd.Methods().Get(i)
			require.NotNil(t, httpRule(m), "%s has no google.api.http binding", access.Procedure(m))
		}
	}
}

func httpRule(m protoreflect.MethodDescriptor) *annotations.HttpRule {
	r, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
	return r
}

type role struct {
	name  string
	token func(*ts.Server, *testing.T) string
}

var roles = []role{
	{"anonymous", func(*ts.Server, *testing.T) string { return "" }},
	{"user", func(s *ts.Server, t *testing.T) string { return s.Session(t, s.UserID, "user@example.com") }},
	{"admin", func(s *ts.Server, t *testing.T) string { return s.Session(t, s.AdminID, "admin@example.com") }},
}

// expectation says which code a role must get from a method, or which codes it must
// not get, derived from the method's declared policy alone.
func expectation(p *agnesv1.Policy, roleName string) (must connect.Code, mustNot []connect.Code) {
	denied := []connect.Code{connect.CodeUnauthenticated, connect.CodePermissionDenied}
	switch {
	case roleName == "anonymous":
		return connect.CodeUnauthenticated, nil
	case roleName == "admin":
		return 0, denied
	case p.GetAccess() == agnesv1.Access_ACCESS_ADMIN:
		return connect.CodePermissionDenied, nil
	case p.GetAccess() == agnesv1.Access_ACCESS_RESOURCE && p.GetResourceField() != "":
		return connect.CodePermissionDenied, nil // no grant on resource "x"
	default:
		return 0, denied
	}
}

// TestRBACTable calls every RPC as anonymous, user and admin over Connect, gRPC and
// REST, and checks the outcome against the RPC's declared policy. A public RPC must
// answer the same whoever calls; the others must deny exactly who the policy denies.
func TestRBACTable(t *testing.T) {
	s := ts.New(t)
	policies := access.LoadPolicies(app.Services()...)
	for _, sd := range app.Services() {
		for i := range sd.Methods().Len() {
			m := sd.Methods().Get(i)
			p := policies[access.Procedure(m)]
			for _, proto := range []ts.Protocol{ts.Connect, ts.GRPC, ts.REST} {
				t.Run(fmt.Sprintf("%s/%s/%s", sd.Name(), m.Name(), proto), func(t *testing.T) {
					got := map[string]string{}
					for _, r := range roles {
						got[r.name] = codeString(call(t, s, proto, m, r.token(s, t)))
					}
					if p.GetAccess() == agnesv1.Access_ACCESS_PUBLIC {
						require.Equal(t, got["anonymous"], got["user"], "public RPC answers differ by caller")
						require.Equal(t, got["anonymous"], got["admin"], "public RPC answers differ by caller")
						return
					}
					for _, r := range roles {
						must, mustNot := expectation(p, r.name)
						if must != 0 {
							require.Equal(t, must.String(), got[r.name], "role %s", r.name)
						}
						for _, c := range mustNot {
							require.NotEqual(t, c.String(), got[r.name], "role %s", r.name)
						}
					}
				})
			}
		}
	}
}

func codeString(c connect.Code) string {
	if c == 0 {
		return "ok"
	}
	return c.String()
}

// request builds a request message with every path parameter and resource field set
// to "x", so resource checks have something to deny.
func request(m protoreflect.MethodDescriptor) *dynamicpb.Message {
	msg := dynamicpb.NewMessage(m.Input())
	for _, name := range pathParams(m) {
		if f := m.Input().Fields().ByName(protoreflect.Name(name)); f != nil && f.Kind() == protoreflect.StringKind {
			msg.Set(f, protoreflect.ValueOfString("x"))
		}
	}
	if p, _ := proto.GetExtension(m.Options(), agnesv1.E_Policy).(*agnesv1.Policy); p.GetResourceField() != "" {
		msg.Set(m.Input().Fields().ByName(protoreflect.Name(p.GetResourceField())), protoreflect.ValueOfString("x"))
	}
	return msg
}

var paramRE = regexp.MustCompile(`\{([a-z_]+)(=[^}]*)?\}`)

func pathParams(m protoreflect.MethodDescriptor) []string {
	_, path := restRoute(m)
	var out []string
	for _, match := range paramRE.FindAllStringSubmatch(path, -1) {
		out = append(out, match[1])
	}
	return out
}

func restRoute(m protoreflect.MethodDescriptor) (string, string) { return gateway.Binding(httpRule(m)) }

func call(t *testing.T, s *ts.Server, p ts.Protocol, m protoreflect.MethodDescriptor, token string) connect.Code {
	if p == ts.REST {
		return callREST(t, s, m, token)
	}
	procedure := access.Procedure(m)
	opts := append(ts.ClientOptions(p), ts.Bearer(token), connect.WithSchema(m),
		connect.WithResponseInitializer(func(spec connect.Spec, msg any) error {
			*msg.(*dynamicpb.Message) = *dynamicpb.NewMessage(spec.Schema.(protoreflect.MethodDescriptor).Output())
			return nil
		}))
	client := connect.NewClient[dynamicpb.Message, dynamicpb.Message](ts.HTTP2Client(), s.URL+procedure, opts...)
	ctx := context.Background()
	if m.IsStreamingServer() {
		stream, err := client.CallServerStream(ctx, connect.NewRequest(request(m)))
		if err != nil {
			return connect.CodeOf(err)
		}
		defer stream.Close()
		for stream.Receive() {
		}
		if err := stream.Err(); err != nil {
			return connect.CodeOf(err)
		}
		return 0
	}
	_, err := client.CallUnary(ctx, connect.NewRequest(request(m)))
	if err != nil {
		var ce *connect.Error
		require.True(t, errors.As(err, &ce), "%v", err)
		return ce.Code()
	}
	return 0
}

func callREST(t *testing.T, s *ts.Server, m protoreflect.MethodDescriptor, token string) connect.Code {
	method, path := restRoute(m)
	path = paramRE.ReplaceAllString(path, "x")
	var body any
	if httpRule(m).GetBody() != "" {
		body = "{}"
	}
	res := s.REST(t, method, path, token, body)
	if res.Status < 400 {
		if m.IsStreamingServer() && strings.Contains(string(res.Body), `"error"`) {
			var chunk struct{ Error struct{ Code int } }
			res.JSON(t, &chunk)
			return connect.Code(chunk.Error.Code)
		}
		return 0
	}
	_, code := res.Error(t)
	for c := connect.Code(1); c <= 16; c++ {
		if c.String() == code {
			return c
		}
	}
	t.Fatalf("unknown code %q in %s", code, res.Body)
	return 0
}

// TestEveryPlainRouteHasAPolicy: plain routes declare their policy as RPCs do; a
// route without one would be denied to everyone.
func TestEveryPlainRouteHasAPolicy(t *testing.T) {
	s := ts.New(t)
	require.NotEmpty(t, s.App.Routes())
	for _, rt := range s.App.Routes() {
		require.NotNil(t, rt.Policy, rt.Pattern)
		require.NotEqual(t, agnesv1.Access_ACCESS_UNSPECIFIED, rt.Policy.GetAccess(), rt.Pattern)
		require.NotEmpty(t, rt.Name, rt.Pattern)
	}
}

// TestRBACTablePlainRoutes calls every plain route as anonymous, user and admin
// and checks the outcome against its declared policy, as TestRBACTable does for RPCs.
func TestRBACTablePlainRoutes(t *testing.T) {
	s := ts.New(t)
	for _, rt := range s.App.Routes() {
		t.Run(rt.Pattern, func(t *testing.T) {
			method, path, _ := strings.Cut(rt.Pattern, " ")
			path = regexp.MustCompile(`\{[a-z_]+\}`).ReplaceAllString(path, "x")
			var body any
			if method == http.MethodPost {
				body = "{}"
			}
			got := map[string]string{}
			for _, r := range roles {
				res := s.REST(t, method, path, r.token(s, t), body)
				got[r.name] = "ok"
				switch {
				case res.Status >= 400 && strings.HasPrefix(res.Header.Get("Content-Type"), "text/html"):
					got[r.name] = htmlStatusCodes[res.Status] // a sign-in page re-rendered with its error
				case res.Status >= 400:
					_, got[r.name] = res.Error(t)
				}
			}
			if rt.Policy.GetAccess() == agnesv1.Access_ACCESS_PUBLIC {
				require.Equal(t, got["anonymous"], got["user"])
				require.Equal(t, got["anonymous"], got["admin"])
				return
			}
			for _, r := range roles {
				must, mustNot := expectation(rt.Policy, r.name)
				if must != 0 {
					require.Equal(t, must.String(), got[r.name], "role %s", r.name)
				}
				for _, c := range mustNot {
					require.NotEqual(t, c.String(), got[r.name], "role %s", r.name)
				}
			}
		})
	}
}

// htmlStatusCodes read the outcome of a page that answers with HTML.
var htmlStatusCodes = map[int]string{
	http.StatusBadRequest: "invalid_argument", http.StatusUnauthorized: "unauthenticated",
	http.StatusForbidden: "permission_denied", http.StatusTooManyRequests: "resource_exhausted",
}
