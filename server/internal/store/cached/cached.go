// Package cached keeps what every request reads in memory, in front of any
// store.Store. It is the one place the server caches state:
//
//	what                         key       read on
//	Identity (groups, grants)    user id   every authenticated request
//	PAT record                   token id  every request with a personal access token
//	session revoked?             jti       every request with a session token
//	UserSettings                 user id   every manifest
//
// Invalidation: all four belong to the identity domain. The inner store advances
// IdentityVersion after every committed identity write (users, groups,
// memberships, grants, tokens, sessions, settings); the cache compares it on every
// read and drops everything when it moved, so a write is visible to the next
// request, whoever made it. A value loaded while a write committed is not kept
// (the version is read before the load and checked after it).
//
// Bounds: each cache holds at most Size entries (least recently used dropped), so
// a flood of distinct tokens or users cannot grow memory.
//
// A second replica needs nothing else here, only a store whose IdentityVersion
// advances on every replica's writes (e.g. Postgres LISTEN/NOTIFY on a version
// row): until the notification arrives, a replica may serve a revoked token for
// that long, which the store implementation must document.
package cached

import (
	"context"
	"sync"

	"github.com/agnesdata/agnes/server/internal/lru"
	"github.com/agnesdata/agnes/server/internal/store"
)

// DefaultSize bounds each cache.
const DefaultSize = 10_000

// Store is a store.Store whose identity reads are cached. Every other method is
// the inner store's.
type Store struct {
	store.Store
	identities *cache[*store.Identity]
	pats       *cache[*store.PAT]
	revoked    *cache[bool]
	settings   *cache[*store.UserSettings]
}

var _ store.Store = (*Store)(nil)

// New wraps inner; size bounds each cache (DefaultSize when <= 0).
func New(inner store.Store, size int) *Store {
	if size <= 0 {
		size = DefaultSize
	}
	v := inner.IdentityVersion
	return &Store{Store: inner,
		identities: newCache[*store.Identity](size, v), pats: newCache[*store.PAT](size, v),
		revoked: newCache[bool](size, v), settings: newCache[*store.UserSettings](size, v)}
}

// Identity implements store.Identities.
func (s *Store) Identity(ctx context.Context, userID string) (*store.Identity, error) {
	return s.identities.get(userID, func() (*store.Identity, error) { return s.Store.Identity(ctx, userID) })
}

// GetPAT implements store.Tokens.
func (s *Store) GetPAT(ctx context.Context, id string) (*store.PAT, error) {
	return s.pats.get(id, func() (*store.PAT, error) { return s.Store.GetPAT(ctx, id) })
}

// SessionRevoked implements store.Tokens.
func (s *Store) SessionRevoked(ctx context.Context, jti string) (bool, error) {
	return s.revoked.get(jti, func() (bool, error) { return s.Store.SessionRevoked(ctx, jti) })
}

// GetUserSettings implements store.Settings.
func (s *Store) GetUserSettings(ctx context.Context, userID string) (*store.UserSettings, error) {
	return s.settings.get(userID, func() (*store.UserSettings, error) { return s.Store.GetUserSettings(ctx, userID) })
}

// cache is one bounded map, valid for one version of the inner store.
type cache[V any] struct {
	version func() uint64
	size    int

	mu   sync.Mutex
	at   uint64 // the version the entries belong to
	vals *lru.Cache[string, V]
}

func newCache[V any](size int, version func() uint64) *cache[V] {
	return &cache[V]{version: version, size: size, at: version(), vals: lru.New[string, V](size)}
}

// entries returns the map for version v, emptied if the version moved.
func (c *cache[V]) entries(v uint64) *lru.Cache[string, V] {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v != c.at {
		c.at, c.vals = v, lru.New[string, V](c.size)
	}
	return c.vals
}

func (c *cache[V]) get(key string, load func() (V, error)) (V, error) {
	v := c.version()
	vals := c.entries(v)
	if val, ok := vals.Get(key); ok {
		return val, nil
	}
	val, err := load()
	if err != nil {
		return val, err
	}
	if c.version() == v { // no write committed while loading
		vals.Put(key, val)
	}
	return val, nil
}
