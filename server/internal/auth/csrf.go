package auth

import (
	"fmt"
	"net/http"

	"connectrpc.com/connect"

	"github.com/agnesdata/agnes/server/internal/apierr"
)

// CSRF refuses cross-origin requests that change state (any method but GET, HEAD
// and OPTIONS) unless they carry a bearer token. A browser attaches the session
// cookie — and a sign-in form's fields — to a request another site makes it send;
// it never attaches an Authorization header. The check is the standard library's
// Sec-Fetch-Site / Origin verification: a request whose Sec-Fetch-Site is not
// same-origin or none, or whose Origin is neither the Host nor a trusted origin
// (the public URL behind a proxy), gets 403. Clients that send neither header are
// not browsers and are let through.
func CSRF(trustedOrigins []string, next http.Handler) (http.Handler, error) {
	cop := http.NewCrossOriginProtection()
	for _, o := range trustedOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("trusted origin %q: %w", o, err)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			if err := cop.Check(r); err != nil {
				apierr.WriteHTTP(w, http.StatusForbidden, connect.CodePermissionDenied,
					"cross-origin request refused: a request that changes state without a bearer token must come from this site")
				return
			}
		}
		next.ServeHTTP(w, r)
	}), nil
}
