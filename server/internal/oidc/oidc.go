// Package oidc is the relying-party side of OpenID Connect sign-in (Google by
// default, any provider by issuer URL): discovery, the authorization-code flow
// with PKCE (S256) and a nonce, and the ID token's checks (signature by the
// provider's published keys, issuer, audience, expiry, nonce). It also reads a
// user's groups from the Google Admin SDK directory.
package oidc

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Config names the provider and this client.
type Config struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	Scopes       []string
	// RedirectURL is where the provider sends the browser back (it may be known
	// only once the server listens).
	RedirectURL func() string
	// HTTPClient talks to the provider (nil: a client with a 30 s timeout).
	HTTPClient *http.Client
}

// Claims are what sign-in uses from a verified ID token.
type Claims struct {
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	HostedDomain  string   // Google Workspace's hd claim
	Groups        []string // the groups claim, when the provider sends one
}

// Errors a caller must tell apart: the provider could not be reached or refused
// the code (ErrExchange), or the ID token failed a check (ErrIDToken).
var (
	ErrExchange = errors.New("the identity provider refused the sign-in")
	ErrIDToken  = errors.New("the ID token did not verify")
)

// Provider is one configured provider. Discovery happens on first use and is
// retried until it succeeds, so a provider that is down at start-up does not
// keep the server from starting.
type Provider struct {
	cfg Config

	mu       sync.Mutex
	provider *gooidc.Provider
}

// New returns a provider; nothing is fetched yet.
func New(cfg Config) *Provider {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &Provider{cfg: cfg}
}

func (p *Provider) discover(ctx context.Context) (*gooidc.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.provider != nil {
		return p.provider, nil
	}
	prov, err := gooidc.NewProvider(gooidc.ClientContext(ctx, p.cfg.HTTPClient), p.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: discovery at %s: %w", ErrExchange, p.cfg.Issuer, err)
	}
	p.provider = prov
	return prov, nil
}

func (p *Provider) oauth(prov *gooidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: prov.Endpoint(),
		RedirectURL: p.cfg.RedirectURL(), Scopes: p.cfg.Scopes}
}

// AuthCodeURL is where to send the browser: the provider's authorization
// endpoint with state, nonce and the S256 challenge of verifier. hostedDomain,
// when set, asks Google to offer only accounts of that Workspace domain (a hint:
// the ID token's hd claim is what is checked).
func (p *Provider) AuthCodeURL(ctx context.Context, state, nonce, verifier, hostedDomain string) (string, error) {
	prov, err := p.discover(ctx)
	if err != nil {
		return "", err
	}
	opts := []oauth2.AuthCodeOption{gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}
	if hostedDomain != "" {
		opts = append(opts, oauth2.SetAuthURLParam("hd", hostedDomain))
	}
	return p.oauth(prov).AuthCodeURL(state, opts...), nil
}

// Exchange trades the code (with the PKCE verifier) for tokens and verifies the
// ID token: signature, issuer, audience (our client id), expiry and nonce.
func (p *Provider) Exchange(ctx context.Context, code, verifier, nonce string) (*Claims, error) {
	prov, err := p.discover(ctx)
	if err != nil {
		return nil, err
	}
	ctx = gooidc.ClientContext(ctx, p.cfg.HTTPClient)
	tok, err := p.oauth(prov).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrExchange, err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return nil, fmt.Errorf("%w: the token response has no id_token", ErrIDToken)
	}
	idt, err := prov.Verifier(&gooidc.Config{ClientID: p.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIDToken, err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, fmt.Errorf("%w: nonce mismatch", ErrIDToken)
	}
	var c struct {
		Email         string   `json:"email"`
		EmailVerified any      `json:"email_verified"` // a bool, or "true" from some providers
		Name          string   `json:"name"`
		HD            string   `json:"hd"`
		Groups        []string `json:"groups"`
	}
	if err := idt.Claims(&c); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrIDToken, err)
	}
	return &Claims{Subject: idt.Subject, Email: c.Email, EmailVerified: c.EmailVerified == true || c.EmailVerified == "true",
		Name: c.Name, HostedDomain: c.HD, Groups: c.Groups}, nil
}
