package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// fakeGoogle speaks the two Google APIs group sync uses: the OAuth token
// endpoint's JWT-bearer grant (RFC 7523; the service account's signed
// assertion, checked against its public key) and the Admin SDK's groups.list
// with userKey, paged by nextPageToken.
type fakeGoogle struct {
	*httptest.Server
	key     *rsa.PrivateKey
	email   string
	subject string
	groups  map[string][]string // user → group emails
}

func newFakeGoogle(t *testing.T) *fakeGoogle {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	f := &fakeGoogle{key: key, email: "agnes-sync@project.iam.gserviceaccount.com", subject: "admin@example.com",
		groups: map[string][]string{"ana@example.com": {"Agnes-Sales@example.com", "agnes-admins@example.com", "other@example.com"}}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("GET /admin/directory/v1/groups", f.list)
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func (f *fakeGoogle) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		googleError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(*jwt.Token) (any, error) { return &f.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(f.URL+"/token"), jwt.WithIssuer(f.email), jwt.WithExpirationRequired())
	if err != nil || claims["sub"] != f.subject || !strings.Contains(claims["scope"].(string), DirectoryScope) {
		googleError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "ya29.directory", "token_type": "Bearer", "expires_in": 3600})
}

func (f *fakeGoogle) list(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer ya29.directory" {
		googleError(w, http.StatusUnauthorized, "Login Required.")
		return
	}
	q := r.URL.Query()
	all, ok := f.groups[q.Get("userKey")]
	if !ok {
		googleError(w, http.StatusNotFound, "Resource Not Found: userKey")
		return
	}
	// One group per page, so paging is exercised.
	i := 0
	if p := q.Get("pageToken"); p != "" {
		i = int(p[0] - '0')
	}
	page := map[string]any{"kind": "admin#directory#groups",
		"groups": []map[string]string{{"kind": "admin#directory#group", "id": "g", "email": all[i], "name": all[i]}}}
	if i+1 < len(all) {
		page["nextPageToken"] = string(rune('0' + i + 1))
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(page)
}

func googleError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": status, "message": msg}})
}

// keyFile writes a service-account key file as Google issues them.
func (f *fakeGoogle) keyFile(t *testing.T, key *rsa.PrivateKey) string {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	raw, err := json.Marshal(map[string]string{"type": "service_account", "project_id": "p", "private_key_id": "k1",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "client_email": f.email,
		"client_id": "1", "token_uri": f.URL + "/token"})
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "sa.json")
	require.NoError(t, os.WriteFile(path, raw, 0o600))
	return path
}

func TestDirectoryListsAUsersGroups(t *testing.T) {
	f := newFakeGoogle(t)
	d, err := NewDirectory(f.URL, f.keyFile(t, f.key), f.subject)
	require.NoError(t, err)
	groups, err := d.Groups(context.Background(), "ana@example.com")
	require.NoError(t, err)
	require.Equal(t, []string{"agnes-sales@example.com", "agnes-admins@example.com", "other@example.com"}, groups,
		"every page, emails lower-cased")

	_, err = d.Groups(context.Background(), "nobody@example.com")
	require.ErrorContains(t, err, "404")

	// A key Google does not know is refused at the token endpoint.
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	d, err = NewDirectory(f.URL, f.keyFile(t, other), f.subject)
	require.NoError(t, err)
	_, err = d.Groups(context.Background(), "ana@example.com")
	require.ErrorContains(t, err, "invalid_grant")

	_, err = NewDirectory(f.URL, filepath.Join(t.TempDir(), "missing.json"), f.subject)
	require.Error(t, err)
}
