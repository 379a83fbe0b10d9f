package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// DirectoryScope is the Admin SDK scope the service account needs (delegated
// domain-wide by a Workspace admin).
const DirectoryScope = "https://www.googleapis.com/auth/admin.directory.group.readonly"

// Directory lists a user's groups with the Google Admin SDK Directory API
// (groups.list with userKey), as a service account acting for a Workspace
// admin (domain-wide delegation). The service account signs a JWT, trades it
// at the key file's token_uri for an access token, and pages through the
// groups.
type Directory struct {
	base   string
	client *http.Client
}

// NewDirectory reads the service-account key file.
func NewDirectory(baseURL, keyFile, subject string) (*Directory, error) {
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("directory credentials: %w", err)
	}
	cfg, err := google.JWTConfigFromJSON(key, DirectoryScope)
	if err != nil {
		return nil, fmt.Errorf("directory credentials %s: %w", keyFile, err)
	}
	cfg.Subject = subject
	// Tokens are fetched with a bounded client too.
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Timeout: 30 * time.Second})
	client := cfg.Client(ctx)
	client.Timeout = 30 * time.Second
	return &Directory{base: strings.TrimRight(baseURL, "/"), client: client}, nil
}

// Groups returns the emails of the groups the user belongs to directly.
func (d *Directory) Groups(ctx context.Context, email string) ([]string, error) {
	var out []string
	page := ""
	for range 100 { // 100 pages of 200 groups: far more than anyone belongs to
		q := url.Values{"userKey": {email}, "maxResults": {"200"}}
		if page != "" {
			q.Set("pageToken", page)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/admin/directory/v1/groups?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		res, err := d.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("directory groups of %s: %w", email, err)
		}
		body, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
		_ = res.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("directory groups of %s: %w", email, err)
		}
		if res.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("directory groups of %s: %s: %s", email, res.Status, firstLine(body))
		}
		var r struct {
			Groups []struct {
				Email string `json:"email"`
			} `json:"groups"`
			NextPageToken string `json:"nextPageToken"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("directory groups of %s: %w", email, err)
		}
		for _, g := range r.Groups {
			out = append(out, strings.ToLower(g.Email))
		}
		if r.NextPageToken == "" {
			return out, nil
		}
		page = r.NextPageToken
	}
	return nil, errors.New("directory: too many pages of groups")
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
