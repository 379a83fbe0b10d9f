package lru

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCache(t *testing.T) {
	c := New[string, int](2)
	c.Put("a", 1)
	c.Put("b", 2)
	_, _ = c.Get("a") // a is now more recent than b
	c.Put("c", 3)
	_, ok := c.Get("b")
	require.False(t, ok, "b was least recently used")
	v, ok := c.Get("a")
	require.True(t, ok)
	require.Equal(t, 1, v)
	c.Put("a", 10)
	v, _ = c.Get("a")
	require.Equal(t, 10, v)
	c.Delete("a")
	require.Equal(t, 1, c.Len())
}
