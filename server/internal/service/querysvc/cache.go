package querysvc

import (
	"container/list"
	"sync"
)

// checkCache remembers which views a query text references, per analytics
// generation, so a repeated query (dashboards, agents retrying, notebooks) skips the
// DuckDB parse. Only the parse is cached: RBAC is checked on every request, and a new
// generation (views may have changed) invalidates every entry.
type checkCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front = most recent
	items map[string]*list.Element
}

type checkEntry struct {
	sql        string
	generation uint64
	tables     []string
}

// maxCachedSQL keeps huge one-off queries out of the cache.
const maxCachedSQL = 16 << 10

func newCheckCache(max int) *checkCache {
	return &checkCache{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (c *checkCache) get(sql string, generation uint64) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[sql]
	if !ok {
		return nil, false
	}
	e := el.Value.(*checkEntry)
	if e.generation != generation {
		c.order.Remove(el)
		delete(c.items, sql)
		return nil, false
	}
	c.order.MoveToFront(el)
	return e.tables, true
}

func (c *checkCache) put(sql string, generation uint64, tables []string) {
	if len(sql) > maxCachedSQL {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[sql]; ok {
		el.Value = &checkEntry{sql: sql, generation: generation, tables: tables}
		c.order.MoveToFront(el)
		return
	}
	c.items[sql] = c.order.PushFront(&checkEntry{sql: sql, generation: generation, tables: tables})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*checkEntry).sql)
	}
}
