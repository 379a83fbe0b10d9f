package querysvc

import "github.com/agnesdata/agnes/server/internal/lru"

// checkCache remembers which views a query text references, per analytics
// generation, so a repeated query (dashboards, agents retrying, notebooks) skips the
// DuckDB parse. Only the parse is cached: RBAC is checked on every request, and an
// entry from another generation (views may have changed) is ignored.
type checkCache struct {
	c *lru.Cache[string, checkEntry]
}

type checkEntry struct {
	generation uint64
	tables     []string
}

// maxCachedSQL keeps huge one-off queries out of the cache.
const maxCachedSQL = 16 << 10

func newCheckCache(max int) *checkCache { return &checkCache{c: lru.New[string, checkEntry](max)} }

func (c *checkCache) get(sql string, generation uint64) ([]string, bool) {
	e, ok := c.c.Get(sql)
	if !ok || e.generation != generation {
		return nil, false
	}
	return e.tables, true
}

func (c *checkCache) put(sql string, generation uint64, tables []string) {
	if len(sql) <= maxCachedSQL {
		c.c.Put(sql, checkEntry{generation: generation, tables: tables})
	}
}
