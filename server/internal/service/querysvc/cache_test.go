package querysvc

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckCache(t *testing.T) {
	c := newCheckCache(2)
	c.put("a", 1, []string{"t"})
	tables, ok := c.get("a", 1)
	require.True(t, ok)
	require.Equal(t, []string{"t"}, tables)
	_, ok = c.get("a", 2)
	require.False(t, ok, "a new generation invalidates")
	_, ok = c.get("a", 1)
	require.False(t, ok, "and the entry is gone")

	for i := range 3 {
		c.put(fmt.Sprint(i), 1, nil)
	}
	_, ok = c.get("0", 1)
	require.False(t, ok, "least recently used is evicted")
	_, ok = c.get("2", 1)
	require.True(t, ok)
	c.put(string(make([]byte, maxCachedSQL+1)), 1, nil)
	require.Len(t, c.items, 2, "huge texts are not cached")
}
