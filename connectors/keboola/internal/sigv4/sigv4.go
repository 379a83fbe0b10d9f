// Package sigv4 signs S3 GET requests with AWS Signature Version 4 (header
// form), the way the Keboola connector downloads export slices with the
// federated credentials of a file detail, and checks such signatures for the
// fake S3 endpoint of kbcfake. Only what a GET of an object needs: the
// payload is always the empty body.
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Credentials are the temporary keys Keboola hands out with a file detail.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string // sent as X-Amz-Security-Token when set
}

// EmptyPayloadHash is the hex SHA-256 of an empty body.
const EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

const (
	algorithm  = "AWS4-HMAC-SHA256"
	timeFormat = "20060102T150405Z"
)

// Sign sets X-Amz-Date, X-Amz-Content-Sha256, X-Amz-Security-Token and
// Authorization on req. Every header set before the call (and Host) is
// signed, so headers the transport adds later (User-Agent) are not. The
// path is sent exactly as it is signed (RawPath is set to its canonical
// encoding).
func Sign(req *http.Request, c Credentials, region, service string, now time.Time) {
	now = now.UTC()
	req.Header.Set("X-Amz-Date", now.Format(timeFormat))
	req.Header.Set("X-Amz-Content-Sha256", EmptyPayloadHash)
	if c.SessionToken != "" {
		req.Header.Set("X-Amz-Security-Token", c.SessionToken)
	}
	req.URL.RawPath = EscapePath(req.URL.Path)
	names := signedNames(req.Header)
	scope := now.Format("20060102") + "/" + region + "/" + service + "/aws4_request"
	sig := signature(req, names, c.SecretAccessKey, scope, now)
	req.Header.Set("Authorization", fmt.Sprintf("%s Credential=%s/%s,SignedHeaders=%s,Signature=%s",
		algorithm, c.AccessKeyID, scope, strings.Join(names, ";"), sig))
}

// Verify checks req's Authorization header against the secret of the
// access key it names; it is what an S3 endpoint does, for fakes.
// secretFor returns the secret of an access key, or false if it is unknown.
func Verify(req *http.Request, secretFor func(accessKeyID string) (string, bool)) error {
	auth, ok := strings.CutPrefix(req.Header.Get("Authorization"), algorithm+" ")
	if !ok {
		return errors.New("no AWS4-HMAC-SHA256 Authorization header")
	}
	fields := map[string]string{}
	for f := range strings.SplitSeq(auth, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	key, scope, _ := strings.Cut(fields["Credential"], "/")
	secret, ok := secretFor(key)
	if !ok {
		return fmt.Errorf("unknown access key %q", key)
	}
	now, err := time.Parse(timeFormat, req.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %w", err)
	}
	if !strings.HasPrefix(scope, now.Format("20060102")+"/") {
		return fmt.Errorf("credential scope %q is not of the day of X-Amz-Date", scope)
	}
	names := strings.Split(fields["SignedHeaders"], ";")
	if !slices.Contains(names, "host") {
		return errors.New("host is not signed")
	}
	if want := signature(req, names, secret, scope, now); !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return errors.New("signature does not match")
	}
	return nil
}

// signedNames returns the lower-case names of host and every header set,
// sorted, except Authorization.
func signedNames(h http.Header) []string {
	names := []string{"host"}
	for k := range h {
		if l := strings.ToLower(k); l != "authorization" && l != "host" {
			names = append(names, l)
		}
	}
	slices.Sort(names)
	return names
}

func signature(req *http.Request, names []string, secret, scope string, now time.Time) string {
	var canon strings.Builder
	canon.WriteString(req.Method + "\n" + EscapePath(req.URL.Path) + "\n" + canonicalQuery(req.URL.Query()) + "\n")
	for _, n := range names {
		v := req.Header.Get(n)
		if n == "host" {
			v = req.Host
			if v == "" {
				v = req.URL.Host
			}
		}
		canon.WriteString(n + ":" + strings.Join(strings.Fields(v), " ") + "\n")
	}
	payload := req.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		payload = EmptyPayloadHash
	}
	canon.WriteString("\n" + strings.Join(names, ";") + "\n" + payload)

	toSign := algorithm + "\n" + now.UTC().Format(timeFormat) + "\n" + scope + "\n" + hexSHA256(canon.String())
	key := []byte("AWS4" + secret)
	for part := range strings.SplitSeq(scope, "/") {
		key = hmacSHA256(key, part)
	}
	return hex.EncodeToString(hmacSHA256(key, toSign))
}

// EscapePath encodes a path the way S3 signs it: every byte except
// A-Z a-z 0-9 - . _ ~ and / is percent-encoded, once.
func EscapePath(p string) string {
	if p == "" {
		return "/"
	}
	return escape(p, true)
}

func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		vals := slices.Sorted(slices.Values(q[k]))
		for _, v := range vals {
			parts = append(parts, escape(k, false)+"="+escape(v, false))
		}
	}
	return strings.Join(parts, "&")
}

func escape(s string, keepSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~',
			c == '/' && keepSlash:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
