package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/agnesdata/agnes/server/internal/lru"
)

// Token types carried in the typ claim.
const (
	TypeSession = "session"
	TypePAT     = "pat"
	// TypeService is a shared secret of a trusted service (the scheduler sidecar),
	// not a JWT: it never appears in a typ claim.
	TypeService = "service"
)

// SessionTTL is how long a session token lives.
const SessionTTL = 24 * time.Hour

// Claims are the JWT claims Agnes issues. There is deliberately no role claim:
// admin-ness is recomputed from group membership on every request.
type Claims struct {
	Email string `json:"email"`
	Type  string `json:"typ"`
	jwt.RegisteredClaims
}

// Issuer signs and verifies tokens with one HS256 secret.
type Issuer struct {
	secret []byte
	now    func() time.Time
	// verified remembers tokens that passed Verify, so a client's next
	// requests skip the HMAC and the claims' JSON (tens of µs each, a good
	// part of a small query's cost). Expiry is checked again on every hit;
	// revocation and the user's state are not claims, the caller checks them
	// on every request.
	verified *lru.Cache[string, *Claims]
}

// verifiedTokens bounds the verified-token cache (a token is ~300 bytes).
const verifiedTokens = 4096

// leeway is the clock skew tolerated on iat and exp.
const leeway = 30 * time.Second

// NewIssuer returns an issuer; the secret must be at least 32 bytes.
func NewIssuer(secret []byte) (*Issuer, error) {
	if len(secret) < 32 {
		return nil, errors.New("JWT secret must be at least 32 bytes")
	}
	return &Issuer{secret: secret, now: time.Now, verified: lru.New[string, *Claims](verifiedTokens)}, nil
}

// Session issues a session token for a user.
func (i *Issuer) Session(userID, email string) (string, *Claims, error) {
	now := i.now().UTC()
	c := &Claims{Email: email, Type: TypeSession, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   userID,
		ID:        uuid.NewString(),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(SessionTTL)),
	}}
	tok, err := i.sign(c)
	return tok, c, err
}

// PAT issues a personal access token; jti is the token row id. A nil expiry means
// the token never expires (the database row stays authoritative either way).
func (i *Issuer) PAT(userID, email, patID string, expires *time.Time) (string, error) {
	c := &Claims{Email: email, Type: TypePAT, RegisteredClaims: jwt.RegisteredClaims{
		Subject:  userID,
		ID:       patID,
		IssuedAt: jwt.NewNumericDate(i.now().UTC()),
	}}
	if expires != nil {
		c.ExpiresAt = jwt.NewNumericDate(*expires)
	}
	return i.sign(c)
}

func (i *Issuer) sign(c *Claims) (string, error) {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(i.secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// ErrInvalidToken covers every malformed, tampered, expired or foreign token.
var ErrInvalidToken = errors.New("invalid or expired token")

// Verify checks signature (HS256 only: alg none and every other algorithm are
// refused), expiry and the required claims. The claims returned are shared:
// callers must not modify them.
func (i *Issuer) Verify(token string) (*Claims, error) {
	if c, ok := i.verified.Get(token); ok {
		if c.ExpiresAt == nil || i.now().Before(c.ExpiresAt.Add(leeway)) {
			return c, nil
		}
		i.verified.Delete(token) // expired: fail below like any other
	}
	c := &Claims{}
	_, err := jwt.ParseWithClaims(token, c, func(*jwt.Token) (any, error) { return i.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(i.now),
		jwt.WithLeeway(leeway))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Subject == "" || c.ID == "" || (c.Type != TypeSession && c.Type != TypePAT) {
		return nil, ErrInvalidToken
	}
	if c.Type == TypeSession && c.ExpiresAt == nil {
		return nil, ErrInvalidToken
	}
	i.verified.Put(token, c)
	return c, nil
}

// HashToken is how personal access tokens are stored: SHA-256 hex of the whole token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
