package auth

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
)

// Purposes of one-time tokens: each flow redeems only its own.
const (
	PurposeMagicLink     = "magic_link"
	PurposePasswordReset = "password_reset"
	PurposePasswordSetup = "password_setup"
	PurposeOIDCState     = "oidc_state"
	PurposeCLICode       = "cli_code"
)

// NewOneTimeToken returns a random URL-safe token (256 bits) and the hash to
// store: the token itself is only ever in the link or redirect it travels in.
func NewOneTimeToken() (token, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token)
}

// SecureRequest reports whether the session cookie must be Secure for r: the
// deployment is HTTPS, or this request arrived over TLS.
func SecureRequest(r *http.Request, httpsDeployment bool) bool {
	return httpsDeployment || r.TLS != nil
}
