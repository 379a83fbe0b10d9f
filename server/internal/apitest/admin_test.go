package apitest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/stretchr/testify/require"

	agnesv1 "github.com/agnesdata/agnes/gen/agnes/v1"
	ts "github.com/agnesdata/agnes/server/internal/testserver"
)

func TestUsersLifecycleOverEveryProtocol(t *testing.T) {
	s := ts.New(t)
	ctx := context.Background()
	for _, p := range ts.RPCProtocols {
		t.Run(string(p), func(t *testing.T) {
			c := s.Clients(p, s.AdminToken)
			email := "carol-" + string(p) + "@example.com"
			created, err := c.Admin.CreateUser(ctx, &agnesv1.CreateUserRequest{Email: strings.ToUpper(email), Password: "password123"})
			require.NoError(t, err)
			u := created.GetUser()
			require.Equal(t, email, u.GetEmail(), "emails are normalized")
			require.Equal(t, "carol-"+string(p), u.GetName())
			require.True(t, u.GetHasPassword())
			require.Equal(t, []string{"Everyone"}, groupNames(u.GetGroups()))

			_, err = c.Admin.CreateUser(ctx, &agnesv1.CreateUserRequest{Email: email})
			require.Equal(t, connect.CodeAlreadyExists, connect.CodeOf(err))

			got, err := c.Admin.UpdateUser(ctx, &agnesv1.UpdateUserRequest{UserId: u.GetId(), Name: ptr("Carol")})
			require.NoError(t, err)
			require.Equal(t, "Carol", got.GetUser().GetName())
			require.True(t, got.GetUser().GetActive(), "unset fields are kept")

			d, err := c.Admin.DeactivateUser(ctx, &agnesv1.DeactivateUserRequest{UserId: u.GetId()})
			require.NoError(t, err)
			require.False(t, d.GetUser().GetActive())
			require.NotNil(t, d.GetUser().GetDeactivatedAt())
			_, err = c.Auth.CreateSessionToken(ctx, &agnesv1.CreateSessionTokenRequest{Email: email, Password: "password123"})
			require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(err))

			_, err = c.Admin.ActivateUser(ctx, &agnesv1.ActivateUserRequest{UserId: u.GetId()})
			require.NoError(t, err)
			_, err = c.Admin.SetUserPassword(ctx, &agnesv1.SetUserPasswordRequest{UserId: u.GetId(), Password: "short"})
			require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
			_, err = c.Admin.SetUserPassword(ctx, &agnesv1.SetUserPasswordRequest{UserId: u.GetId(), Password: "another-password"})
			require.NoError(t, err)
			_, err = c.Auth.CreateSessionToken(ctx, &agnesv1.CreateSessionTokenRequest{Email: email, Password: "another-password"})
			require.NoError(t, err)

			_, err = c.Admin.DeleteUser(ctx, &agnesv1.DeleteUserRequest{UserId: u.GetId()})
			require.NoError(t, err)
			_, err = c.Admin.GetUser(ctx, &agnesv1.GetUserRequest{UserId: u.GetId()})
			require.Equal(t, connect.CodeNotFound, connect.CodeOf(err))
		})
	}
}

func groupNames(gs []*agnesv1.GroupRef) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.GetName())
	}
	return out
}

func TestTheLastActiveAdminStays(t *testing.T) {
	s := ts.New(t)
	// The admin cannot deactivate or delete themselves...
	res := s.REST(t, http.MethodPost, "/api/users/"+s.AdminID+"/deactivate", s.AdminToken, "{}")
	require.Equal(t, http.StatusConflict, res.Status)
	res = s.REST(t, http.MethodDelete, "/api/users/"+s.AdminID, s.AdminToken, nil)
	require.Equal(t, http.StatusConflict, res.Status)
	// ...nor leave the Admin group as its last member, even through another admin's hands.
	var groups []struct{ ID, Name string }
	s.REST(t, http.MethodGet, "/api/admin/groups", s.AdminToken, nil).JSON(t, &groups)
	var adminGroup string
	for _, g := range groups {
		if g.Name == "Admin" {
			adminGroup = g.ID
		}
	}
	res = s.REST(t, http.MethodDelete, "/api/admin/groups/"+adminGroup+"/members/"+s.AdminID, s.AdminToken, nil)
	require.Equal(t, http.StatusConflict, res.Status)
	detail, code := res.Error(t)
	require.Equal(t, "failed_precondition", code)
	require.Contains(t, detail, "last active admin")
	res = s.REST(t, http.MethodDelete, "/api/admin/groups/"+adminGroup, s.AdminToken, nil)
	require.Equal(t, http.StatusConflict, res.Status, "system groups cannot be deleted")
}

func TestGroupsGrantsAndAccessRequests(t *testing.T) {
	s := ts.New(t)
	// Create a group over REST: 201 with the group as the body.
	res := s.REST(t, http.MethodPost, "/api/admin/groups", s.AdminToken, map[string]string{"name": "finance", "description": "Finance team"})
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	var g struct {
		ID          string `json:"id"`
		MemberCount int    `json:"member_count"`
	}
	res.JSON(t, &g)
	require.Equal(t, 0, g.MemberCount)
	res = s.REST(t, http.MethodPost, "/api/admin/groups", s.AdminToken, map[string]string{"name": "finance"})
	require.Equal(t, http.StatusConflict, res.Status)

	res = s.REST(t, http.MethodPost, "/api/admin/groups/"+g.ID+"/members", s.AdminToken, map[string]string{"email": "user@example.com"})
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	res = s.REST(t, http.MethodPost, "/api/admin/groups/"+g.ID+"/members", s.AdminToken, map[string]string{"email": "user@example.com"})
	require.Equal(t, http.StatusConflict, res.Status)

	// The user asks for a table; the admin approves into the group; the grant exists.
	res = s.REST(t, http.MethodPost, "/api/access-requests", s.UserToken, map[string]string{"resource_type": "table", "resource_id": "orders", "reason": "Q3 report"})
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	var ar struct{ ID, Status string }
	res.JSON(t, &ar)
	require.Equal(t, "pending", ar.Status)
	var mine []map[string]any
	s.REST(t, http.MethodGet, "/api/access-requests", s.UserToken, nil).JSON(t, &mine)
	require.Len(t, mine, 1)
	res = s.REST(t, http.MethodPost, "/api/access-requests/"+ar.ID+"/review", s.UserToken, map[string]any{"approve": true, "group_id": g.ID})
	require.Equal(t, http.StatusForbidden, res.Status, "users cannot approve their own requests")
	res = s.REST(t, http.MethodPost, "/api/access-requests/"+ar.ID+"/review", s.AdminToken, map[string]any{"approve": true, "group_id": g.ID})
	require.Equal(t, http.StatusOK, res.Status, "%s", res.Body)

	var grants []struct {
		ID           string `json:"id"`
		GroupName    string `json:"group_name"`
		ResourceType string `json:"resource_type"`
		ResourceID   string `json:"resource_id"`
	}
	s.REST(t, http.MethodGet, "/api/permissions?resource_type=table", s.AdminToken, nil).JSON(t, &grants)
	require.Len(t, grants, 1)
	require.Equal(t, "finance", grants[0].GroupName)
	require.Equal(t, "orders", grants[0].ResourceID)

	var access struct {
		IsAdmin bool `json:"is_admin"`
		Items   []struct {
			ResourceID string `json:"resource_id"`
		} `json:"items"`
	}
	s.REST(t, http.MethodGet, "/api/me/effective-access", s.UserToken, nil).JSON(t, &access)
	require.False(t, access.IsAdmin)
	require.Len(t, access.Items, 1)
	require.Equal(t, "orders", access.Items[0].ResourceID)

	// Duplicate grant, unknown type, blank id.
	require.Equal(t, http.StatusConflict, s.REST(t, http.MethodPost, "/api/permissions", s.AdminToken,
		map[string]string{"group_id": g.ID, "resource_type": "table", "resource_id": "orders"}).Status)
	require.Equal(t, http.StatusBadRequest, s.REST(t, http.MethodPost, "/api/permissions", s.AdminToken,
		map[string]string{"group_id": g.ID, "resource_type": "planet", "resource_id": "mars"}).Status)
	require.Equal(t, http.StatusBadRequest, s.REST(t, http.MethodPost, "/api/permissions", s.AdminToken,
		map[string]string{"group_name": "finance", "resource_type": "table", "resource_id": " "}).Status)

	// Revoke; deleting the group removes the rest.
	require.Equal(t, http.StatusNoContent, s.REST(t, http.MethodDelete, "/api/permissions/"+grants[0].ID, s.AdminToken, nil).Status)
	require.Equal(t, http.StatusNoContent, s.REST(t, http.MethodDelete, "/api/admin/groups/"+g.ID, s.AdminToken, nil).Status)
	require.Equal(t, http.StatusNotFound, s.REST(t, http.MethodGet, "/api/admin/groups/"+g.ID, s.AdminToken, nil).Status)
}

func TestBadInputGetsClearErrors(t *testing.T) {
	s := ts.New(t, ts.WithConfig(func(c *configT) { c.MaxBodyBytes = 4096 }))
	cases := []struct {
		name, method, path, body string
		status                   int
		code, detail             string
	}{
		{"unknown route", http.MethodGet, "/api/nope", "", 404, "not_found", "no route"},
		{"unknown top-level path", http.MethodGet, "/favicon.ico", "", 404, "not_found", "no route"},
		{"malformed json", http.MethodPost, "/api/users", `{"email": `, 400, "invalid_argument", "malformed JSON body"},
		{"wrong type", http.MethodPost, "/api/users", `{"email": 5}`, 400, "invalid_argument", "email"},
		// REST ignores fields it does not model (as the Python API did); here the
		// misspelt field leaves email unset, which is what the answer says.
		{"unknown field", http.MethodPost, "/api/users", `{"emial": "a@b.c"}`, 400, "invalid_argument", "email"},
		{"bad email", http.MethodPost, "/api/users", `{"email": "not an email"}`, 400, "invalid_argument", "invalid email"},
		{"oversized body", http.MethodPost, "/api/users", `{"email": "` + strings.Repeat("a", 5000) + `"}`, 413, "resource_exhausted", "too large"},
		{"wrong method", http.MethodPut, "/auth/me", "{}", 405, "unimplemented", "not allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			res := s.REST(t, c.method, c.path, s.AdminToken, body)
			require.Equal(t, c.status, res.Status, "%s", res.Body)
			require.Equal(t, "application/json", res.Header.Get("Content-Type"))
			detail, code := res.Error(t)
			require.Equal(t, c.code, code)
			require.Contains(t, detail, c.detail)
		})
	}

	// A streamed (chunked) oversized body is caught too.
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/users", &slowReader{n: 10000})
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode)
}

type slowReader struct{ n int }

func (r *slowReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, ioEOF
	}
	k := min(len(p), r.n, 512)
	for i := range k {
		p[i] = ' '
	}
	r.n -= k
	return k, nil
}

func TestIntegersAreJSONNumbers(t *testing.T) {
	s := ts.New(t)
	res := s.REST(t, http.MethodGet, "/api/admin/groups", s.AdminToken, nil)
	var raw []map[string]json.RawMessage
	res.JSON(t, &raw)
	require.NotEmpty(t, raw)
	require.NotContains(t, string(raw[0]["member_count"]), `"`)
}

func TestHealthReflectionAndOpenAPI(t *testing.T) {
	s := ts.New(t)
	var health struct{ Status, DBSchema string }
	res := s.REST(t, http.MethodGet, "/api/health", "", nil)
	require.Equal(t, http.StatusOK, res.Status)
	res.JSON(t, &health)
	require.Equal(t, "ok", health.Status)

	checker := grpchealth.NewClient(ts.HTTP2Client(), s.URL, connect.WithGRPC())
	status, err := checker.Check(context.Background(), &grpchealth.CheckRequest{})
	require.NoError(t, err)
	require.Equal(t, grpchealth.StatusServing, status.Status)

	refl := grpcreflect.NewClient(ts.HTTP2Client(), s.URL, connect.WithGRPC())
	stream := refl.NewStream(context.Background())
	names, err := stream.ListServices()
	require.NoError(t, err)
	_, _ = stream.Close()
	var got []string
	for _, n := range names {
		got = append(got, string(n))
	}
	for _, want := range []string{"agnes.v1.SyncService", "agnes.v1.QueryService", "agnes.v1.CatalogService",
		"agnes.v1.AdminService", "agnes.v1.MemoryService", "agnes.v1.AuthService", "grpc.health.v1.Health",
		"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} {
		require.Contains(t, got, want)
	}

	res = s.REST(t, http.MethodGet, "/openapi.json", "", nil)
	require.Equal(t, http.StatusOK, res.Status)
	var spec struct {
		Swagger string                    `json:"swagger"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	res.JSON(t, &spec)
	require.Equal(t, "2.0", spec.Swagger)
	require.Contains(t, spec.Paths, "/api/query")
	require.Contains(t, spec.Paths, "/auth/bootstrap")
}

// REST ignores request fields the API does not model, as the Python API did
// (its clients send them). (Connect's JSON codec and binary protobuf already
// skip unknown fields: connect-go's default, and protobuf's rule.)
func TestRESTIgnoresUnknownFields(t *testing.T) {
	s := ts.New(t)
	res := s.REST(t, http.MethodPost, "/api/users", s.AdminToken,
		`{"email": "ana@example.com", "name": "Ana", "send_invite": false, "something_new": {"x": 1}}`)
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	res = s.REST(t, http.MethodPost, "/auth/tokens", s.UserToken, `{"name": "laptop", "scope": "general"}`)
	require.Equal(t, http.StatusCreated, res.Status, "%s", res.Body)
	res = s.REST(t, http.MethodPost, "/api/users", s.AdminToken, `{"email": 5}`)
	require.Equal(t, http.StatusBadRequest, res.Status, "a known field of the wrong type is still an error")
}
