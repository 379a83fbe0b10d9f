package kbcfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/agnesdata/agnes/connectors/keboola/internal/sigv4"
)

// leaksToken answers 400 when a request for a signed or cloud URL carries
// the Storage token: such URLs have their own auth, and a client that
// sends the token there leaks it to a third party.
func leaksToken(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get(tokenHeader) == "" {
		return false
	}
	http.Error(w, "the Storage API token must never be sent to a file storage URL", http.StatusBadRequest)
	return true
}

// authorize runs check with f's current credentials (secret, S3 key id,
// S3 session token). When the check passes but an expiry was asked for,
// the credentials are replaced and the request refused.
func (s *Server) authorize(f *file, check func(secret, keyID, session string) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !check(f.secret, f.keyID, f.session) {
		return false
	}
	if s.expire {
		s.expire = false
		f.secret, f.keyID, f.session = randomHex(16), "ASIA"+strings.ToUpper(randomHex(8)), randomHex(24)
		return false
	}
	return true
}

// serveSigned serves a file's pre-signed url: the manifest of a sliced
// file or the data of a single one. It needs the signature, nothing else.
func (s *Server) serveSigned(w http.ResponseWriter, r *http.Request) {
	if leaksToken(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, _ := parseID(r.PathValue("file"))
	f, ok := s.files[id]
	if !ok || r.URL.Query().Get("sig") != f.sig {
		http.Error(w, "<Error><Code>AccessDenied</Code><Message>Invalid signature</Message></Error>", http.StatusForbidden)
		return
	}
	switch kind := r.PathValue("kind"); {
	case kind == "manifest" && f.sliced:
		entries := []any{}
		for i := range f.slices {
			entries = append(entries, map[string]any{"url": f.entryURL(i), "mandatory": true})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"entries": entries})
	case kind == "data" && !f.sliced:
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(f.slices[0])
	default:
		http.NotFound(w, r)
	}
}

// serveGCS is the JSON API's object download:
// GET /storage/v1/b/<bucket>/o/<object, slashes escaped as %2F>?alt=media
// with Authorization: Bearer <gcsCredentials.access_token>.
func (s *Server) serveGCS(w http.ResponseWriter, r *http.Request) {
	if leaksToken(w, r) {
		return
	}
	gcsError := func(code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/storage/v1/b/")
	bucket, object, found := strings.Cut(rest, "/o/")
	if !ok || !found || r.Method != http.MethodGet {
		gcsError(http.StatusNotFound, "Not Found")
		return
	}
	if bucket != gcsBucket {
		gcsError(http.StatusNotFound, "The specified bucket does not exist.")
		return
	}
	name, err := url.PathUnescape(object)
	if err != nil || strings.Contains(object, "/") { // an object name's slashes must be escaped
		gcsError(http.StatusNotFound, "No such object: "+bucket+"/"+object)
		return
	}
	s.mu.Lock()
	f, i, ok := s.slice(name)
	s.mu.Unlock()
	if !ok || f.provider != GCP {
		gcsError(http.StatusNotFound, "No such object: "+bucket+"/"+name)
		return
	}
	if !s.authorize(f, func(secret, _, _ string) bool { return r.Header.Get("Authorization") == "Bearer "+secret }) {
		gcsError(http.StatusUnauthorized, "Invalid Credentials")
		return
	}
	if r.URL.Query().Get("alt") != "media" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"kind": "storage#object", "bucket": bucket, "name": name,
			"size": strconv.Itoa(len(f.slices[i]))})
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(f.slices[i])
}

// serveS3 is GetObject, path style (/<bucket>/<key>), SigV4-signed with
// the file's federated credentials and their session token.
func (s *Server) serveS3(w http.ResponseWriter, r *http.Request) {
	if leaksToken(w, r) {
		return
	}
	s3Error := func(code int, c, msg string) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(code)
		fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>", c, msg)
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	s.mu.Lock()
	f, i, ok := s.slice(key)
	s.mu.Unlock()
	if bucket != s3Bucket || !ok || f.provider != AWS || r.Method != http.MethodGet {
		s3Error(http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	var err error
	if !s.authorize(f, func(secret, keyID, session string) bool {
		err = sigv4.Verify(r, func(id string) (string, bool) { return secret, id == keyID })
		return err == nil && r.Header.Get("X-Amz-Security-Token") == session
	}) {
		s3Error(http.StatusForbidden, "InvalidToken", fmt.Sprintf("The signature or security token is invalid or expired (%v).", err))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(f.slices[i])
}

// serveAzure is Get Blob on an Azurite-style endpoint
// (/<account>/<container>/<blob>) authorised by the SAS query string.
func (s *Server) serveAzure(w http.ResponseWriter, r *http.Request) {
	if leaksToken(w, r) {
		return
	}
	azError := func(code int, c string) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(code)
		fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>%s</Message></Error>", c, c)
	}
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 3)
	if len(parts) != 3 || parts[0] != azureAccount || parts[1] != azureContainer || r.Method != http.MethodGet {
		azError(http.StatusNotFound, "ContainerNotFound")
		return
	}
	s.mu.Lock()
	f, i, ok := s.slice(parts[2])
	s.mu.Unlock()
	if !ok || f.provider != Azure {
		azError(http.StatusNotFound, "BlobNotFound")
		return
	}
	q := r.URL.Query()
	if !s.authorize(f, func(secret, _, _ string) bool { return q.Get("sig") == secret && q.Get("sv") != "" }) {
		azError(http.StatusForbidden, "AuthenticationFailed")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(f.slices[i])
}
