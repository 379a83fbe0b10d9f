package querysvc

import (
	"github.com/agnesdata/agnes/server/internal/lru"
	"github.com/agnesdata/agnes/server/internal/sqlguard"
)

// checkCache remembers the sandbox's verdict on a query text (the views it
// references, the SQL to run), per analytics generation, so a repeated query (dashboards, agents retrying, notebooks) skips the
// DuckDB parse. Only the parse is cached: RBAC is checked on every request, and an
// entry from another generation (views may have changed) is ignored.
type checkCache struct {
	c *lru.Cache[string, checkEntry]
}

type checkEntry struct {
	generation uint64
	checked    sqlguard.Checked
}

// maxCachedSQL keeps huge one-off queries out of the cache.
const maxCachedSQL = 16 << 10

func newCheckCache(max int) *checkCache { return &checkCache{c: lru.New[string, checkEntry](max)} }

func (c *checkCache) get(sql string, generation uint64) (sqlguard.Checked, bool) {
	e, ok := c.c.Get(sql)
	if !ok || e.generation != generation {
		return sqlguard.Checked{}, false
	}
	return e.checked, true
}

func (c *checkCache) put(sql string, generation uint64, checked sqlguard.Checked) {
	if len(sql) <= maxCachedSQL {
		c.c.Put(sql, checkEntry{generation: generation, checked: checked})
	}
}
