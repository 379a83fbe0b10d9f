// Package access decides what a caller may do. Every RPC declares its rule in the
// proto (agnes.v1.policy); Policies reads them from the descriptors, Authorizer
// enforces them for every protocol, and resource checks that need more than a request
// field (a query's tables) call the same Principal.Can the interceptor uses.
package access

import (
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
)

// Policies maps a procedure ("/agnes.v1.AuthService/GetMe") to its declared policy.
type Policies map[string]*agnesv1.Policy

// Procedure is the Connect procedure name of a method.
func Procedure(m protoreflect.MethodDescriptor) string {
	return fmt.Sprintf("/%s/%s", m.Parent().FullName(), m.Name())
}

// LoadPolicies reads the policy option of every method of the services. A method
// without one gets no entry, which the authorizer treats as deny.
func LoadPolicies(services ...protoreflect.ServiceDescriptor) Policies {
	out := Policies{}
	for _, sd := range services {
		methods := sd.Methods()
		for i := range methods.Len() {
			m := methods.Get(i)
			if p := policyOf(m); p != nil && p.GetAccess() != agnesv1.Access_ACCESS_UNSPECIFIED {
				out[Procedure(m)] = p
			}
		}
	}
	return out
}

// policyOf is a method's declared policy, read_only also when its REST binding is
// GET: HTTP's safe method promises the same, so read-only tokens may call it.
func policyOf(m protoreflect.MethodDescriptor) *agnesv1.Policy {
	p, _ := proto.GetExtension(m.Options(), agnesv1.E_Policy).(*agnesv1.Policy)
	if p == nil || p.GetReadOnly() {
		return p
	}
	if rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule); rule.GetGet() != "" {
		p = proto.CloneOf(p)
		p.ReadOnly = true
	}
	return p
}

// Validate reports methods without a usable policy, and resource policies whose
// resource_field does not name a string field of the request.
func Validate(services ...protoreflect.ServiceDescriptor) error {
	var problems []string
	for _, sd := range services {
		methods := sd.Methods()
		for i := range methods.Len() {
			m := methods.Get(i)
			p, _ := proto.GetExtension(m.Options(), agnesv1.E_Policy).(*agnesv1.Policy)
			switch {
			case p == nil || p.GetAccess() == agnesv1.Access_ACCESS_UNSPECIFIED:
				problems = append(problems, Procedure(m)+": no access policy")
			case p.GetResourceField() != "":
				f := m.Input().Fields().ByName(protoreflect.Name(p.GetResourceField()))
				if f == nil || f.Kind() != protoreflect.StringKind || f.IsList() {
					problems = append(problems, Procedure(m)+": resource_field is not a string field of the request")
				}
				if p.GetResourceType() == "" {
					problems = append(problems, Procedure(m)+": resource_field without resource_type")
				}
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("access policies: %s", strings.Join(problems, "; "))
	}
	return nil
}

// PolicyOf returns the declared policy of an RPC of the registered API by its
// procedure ("/agnes.v1.SyncService/GetManifest"): the policy of a plain route
// that mirrors that RPC. nil when there is none (denied).
func PolicyOf(procedure string) *agnesv1.Policy {
	name := protoreflect.FullName(strings.Replace(strings.TrimPrefix(procedure, "/"), "/", ".", 1))
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		return nil
	}
	m, ok := d.(protoreflect.MethodDescriptor)
	if !ok {
		return nil
	}
	return policyOf(m)
}
