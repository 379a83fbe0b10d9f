package apitest

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/app"
	"github.com/agnesdata/agnes/server/internal/gateway"
)

// route is one REST binding in the order the gateway registers it.
type route struct {
	method, template, procedure string
}

func routes() []route {
	var out []route
	for _, sd := range app.Services() { // the order the gateway registers services
		for i := range sd.Methods().Len() {
			m := sd.Methods().Get(i)
			for _, b := range bindings(m) {
				out = append(out, route{b[0], b[1], access.Procedure(m)})
			}
		}
	}
	return out
}

func bindings(m protoreflect.MethodDescriptor) [][2]string {
	r := httpRule(m)
	var out [][2]string
	add := func(method, path string) { out = append(out, [2]string{method, path}) }
	method, path := restRoute(m)
	add(method, path)
	for _, extra := range r.GetAdditionalBindings() {
		add(gateway.Binding(extra))
	}
	return out
}

// matches reports whether a template (`/a/{x}/b`, `/a/{x=**}`) matches a path.
func matches(template, path string) bool {
	t := strings.Split(strings.Trim(template, "/"), "/")
	p := strings.Split(strings.Trim(path, "/"), "/")
	for i, seg := range t {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "=**}") {
			return true // the rest, even empty
		}
		if i >= len(p) {
			return false
		}
		if !strings.HasPrefix(seg, "{") && seg != p[i] {
			return false
		}
	}
	return len(t) == len(p)
}

// TestNoRouteShadowsAnother guards the REST mirror's routing: grpc-gateway tries
// routes registered later first, so a parameterised route registered after a literal
// sibling (or a {x=**} route after its own prefix) would steal the sibling's
// requests. Every route's own path must not be matched by any later route.
func TestNoRouteShadowsAnother(t *testing.T) {
	rs := routes()
	for i, r := range rs {
		path := paramRE.ReplaceAllString(r.template, "some-id")
		for _, later := range rs[i+1:] {
			if later.method == r.method && later.procedure != r.procedure && matches(later.template, path) {
				t.Errorf("%s %s (%s) is shadowed by %s (%s): declare %s earlier in its service",
					r.method, r.template, r.procedure, later.template, later.procedure, later.procedure)
			}
		}
	}
}
