package auth

import (
	"errors"
	"testing"
	"time"
)

// A token remembered as verified must still expire on time.
func TestVerifiedTokenStillExpires(t *testing.T) {
	i, err := NewIssuer([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	i.now = func() time.Time { return now }
	tok, _, err := i.Session("u1", "a@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second call is answered from the cache
		if _, err := i.Verify(tok); err != nil {
			t.Fatalf("fresh token: %v", err)
		}
	}
	now = now.Add(SessionTTL + leeway + time.Second)
	if _, err := i.Verify(tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired token verified: %v", err)
	}
	if _, err := i.Verify(tok + "x"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("tampered token verified: %v", err)
	}
}
