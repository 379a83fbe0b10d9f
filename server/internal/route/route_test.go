package route_test

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/agnesdata/agnes/server/internal/access"
	"github.com/agnesdata/agnes/server/internal/auth"
	"github.com/agnesdata/agnes/server/internal/reqctx"
	"github.com/agnesdata/agnes/server/internal/route"
	"github.com/agnesdata/agnes/server/internal/store"
	"github.com/agnesdata/agnes/server/internal/store/duckdbstore"
)

func adapter(t *testing.T) (*route.Adapter, string) {
	st, err := duckdbstore.Open(t.Context(), filepath.Join(t.TempDir(), "s.duckdb"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	u, err := st.CreateUser(t.Context(), store.NewUser{Email: "u@example.com"})
	require.NoError(t, err)
	issuer, err := auth.NewIssuer([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	tok, _, err := issuer.Session(u.ID, u.Email)
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return route.NewAdapter(auth.NewAuthenticator(issuer, st), access.NewAuthorizer(access.Policies{}, nil), log), tok
}

func serve(a *route.Adapter, rt route.Route, token string) (*httptest.ResponseRecorder, *reqctx.Info) {
	mux := http.NewServeMux()
	a.Mount(mux, rt)
	req := httptest.NewRequest(http.MethodGet, "/r/x", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	info := &reqctx.Info{RequestID: "r1"}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req.WithContext(reqctx.With(req.Context(), info)))
	return rec, info
}

func TestARouteWithoutAPolicyIsDeniedToEveryone(t *testing.T) {
	a, tok := adapter(t)
	called := false
	rt := route.Route{Pattern: "GET /r/{id}", Name: "r", Handler: func(http.ResponseWriter, *http.Request) error {
		called = true
		return nil
	}}
	for _, token := range []string{"", tok} {
		rec, info := serve(a, rt, token)
		require.Equal(t, http.StatusForbidden, rec.Code)
		_, name, code := info.Outcome()
		require.Equal(t, "r", name)
		require.Equal(t, "permission_denied", code)
	}
	require.False(t, called)
}

func TestHandlerErrorsBecomeAPIErrors(t *testing.T) {
	a, tok := adapter(t)
	rt := route.Route{Pattern: "GET /r/{id}", Name: "r", Policy: route.Authenticated,
		Handler: func(http.ResponseWriter, *http.Request) error {
			return connect.NewError(connect.CodeNotFound, errors.New("no such thing"))
		}}
	rec, _ := serve(a, rt, "")
	require.Equal(t, http.StatusUnauthorized, rec.Code, "the policy runs before the handler")
	rec, info := serve(a, rt, tok)
	require.Equal(t, http.StatusNotFound, rec.Code)
	var body struct{ Detail, Code string }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, "no such thing", body.Detail)
	require.Equal(t, "not_found", body.Code)
	_, _, code := info.Outcome()
	require.Equal(t, "not_found", code)

	rt.Handler = func(http.ResponseWriter, *http.Request) error { return errors.New("disk on fire at /var/secret") }
	rec, _ = serve(a, rt, tok)
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.NotContains(t, rec.Body.String(), "/var/secret", "internal text never reaches the caller")
	require.Contains(t, rec.Body.String(), "r1", "the request id does")

	rt.Handler = func(http.ResponseWriter, *http.Request) error {
		return &route.TooLargeError{Msg: "file too large (max 10 bytes)"}
	}
	rec, _ = serve(a, rt, tok)
	require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	require.Contains(t, rec.Body.String(), "max 10 bytes")
}

func TestResourceRoutesNeedAGrantOnTheirWildcard(t *testing.T) {
	a, tok := adapter(t)
	rt := route.Route{Pattern: "GET /r/{id}", Name: "r", Policy: route.Resource("table", "id"),
		Handler: func(http.ResponseWriter, *http.Request) error { return nil }}
	rec, _ := serve(a, rt, tok)
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Contains(t, rec.Body.String(), "access denied to table 'x'")
}

// A route's handler writes through a writer that keeps ReadFrom (net/http's
// sendfile path for http.ServeContent) and still notes that the response began.
func TestRouteWriterKeepsReadFrom(t *testing.T) {
	a, tok := adapter(t)
	rt := route.Route{Pattern: "GET /r/{id}", Name: "r", Policy: route.Authenticated,
		Handler: func(w http.ResponseWriter, _ *http.Request) error {
			rf, ok := w.(io.ReaderFrom)
			if !ok {
				return errors.New("the route's writer has no ReadFrom")
			}
			if _, err := rf.ReadFrom(strings.NewReader("file bytes")); err != nil {
				return err
			}
			return errors.New("failed after the response began")
		}}
	rec, _ := serve(a, rt, tok)
	require.Equal(t, http.StatusOK, rec.Code, "an error after ReadFrom began the response is not written over it")
	require.Equal(t, "file bytes", rec.Body.String())
}
