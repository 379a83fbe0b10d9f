package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// MinPasswordLength is the shortest password accepted when one is set.
const MinPasswordLength = 8

// Argon2id parameters (RFC 9106 second recommendation, and argon2-cffi's defaults, so
// hashes carried over from the Python system verify unchanged).
const (
	argonTime    = 3
	argonMemory  = 64 * 1024
	argonThreads = 4
	argonKeyLen  = 32
	argonSaltLen = 16
)

// hashing bounds the argon2id computations running at once: each takes
// argonMemory (64 MiB) and a core for tens of milliseconds, so a burst of
// sign-ins from anywhere cannot take more than this many of either.
var hashing = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))

// hashWait is how long a sign-in waits for a free slot before the server
// answers that it is busy.
const hashWait = 5 * time.Second

// ErrBusy: every hashing slot stayed taken for hashWait.
var ErrBusy = errors.New("sign-in is busy; try again in a moment")

// withSlot runs fn holding a hashing slot.
func withSlot(ctx context.Context, fn func()) error {
	wait := time.NewTimer(hashWait)
	defer wait.Stop()
	select {
	case hashing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-wait.C:
		return ErrBusy
	}
	defer func() { <-hashing }()
	fn()
	return nil
}

// HashPasswordContext is HashPassword within the server-wide bound on
// concurrent hashing (ErrBusy when no slot frees up in time).
func HashPasswordContext(ctx context.Context, password string) (hash string, err error) {
	if serr := withSlot(ctx, func() { hash, err = HashPassword(password) }); serr != nil {
		return "", serr
	}
	return hash, err
}

// VerifyPasswordContext is VerifyPassword within the same bound.
func VerifyPasswordContext(ctx context.Context, password, phc string) (ok bool, err error) {
	if serr := withSlot(ctx, func() { ok, err = VerifyPassword(password, phc) }); serr != nil {
		return false, serr
	}
	return ok, err
}

// HashPassword returns an argon2id PHC string.
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("malformed password hash")

// VerifyPassword checks a password against a PHC string produced by HashPassword (or
// any argon2id PHC string), in constant time.
func VerifyPassword(password, phc string) (bool, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, errBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
