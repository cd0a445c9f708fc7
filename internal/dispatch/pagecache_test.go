package dispatch

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/cursor"
)

func TestPageCacheEviction(t *testing.T) {
	t.Parallel()
	page := func(seq int64, size int) *cachedPage {
		return &cachedPage{key: keyFor(cursor.After(seq), []string{"s"}), size: size}
	}
	has := func(c *pageCache, seq int64) bool {
		_, ok := c.get(keyFor(cursor.After(seq), []string{"s"}))
		return ok
	}

	t.Run("least recently used goes first", func(t *testing.T) {
		t.Parallel()
		c := newPageCache(300)
		c.put(page(1, 100))
		c.put(page(2, 100))
		c.put(page(3, 100))
		require.True(t, has(c, 1)) // now the most recently used
		c.put(page(4, 100))
		require.False(t, has(c, 2), "the least recently used page is evicted")
		require.True(t, has(c, 1))
		require.True(t, has(c, 3))
		require.True(t, has(c, 4))
		require.Equal(t, 300, c.size)
	})

	t.Run("a big page evicts as many as it needs", func(t *testing.T) {
		t.Parallel()
		c := newPageCache(300)
		c.put(page(1, 100))
		c.put(page(2, 100))
		c.put(page(3, 250))
		require.False(t, has(c, 1))
		require.False(t, has(c, 2))
		require.True(t, has(c, 3))
		require.Equal(t, 250, c.size)
	})

	t.Run("a page larger than the cache is not kept", func(t *testing.T) {
		t.Parallel()
		c := newPageCache(300)
		c.put(page(1, 100))
		c.put(page(2, 301))
		require.False(t, has(c, 2))
		require.True(t, has(c, 1))
	})

	t.Run("streams are part of the key, in any order", func(t *testing.T) {
		t.Parallel()
		c := newPageCache(300)
		c.put(&cachedPage{key: keyFor(cursor.Start, []string{"a", "b"}), size: 1})
		_, ok := c.get(keyFor(cursor.Start, []string{"b", "a"}))
		require.True(t, ok)
		_, ok = c.get(keyFor(cursor.Start, []string{"a"}))
		require.False(t, ok)
		_, ok = c.get(keyFor(cursor.Start, nil))
		require.False(t, ok)
	})

	t.Run("nil cache is disabled", func(t *testing.T) {
		t.Parallel()
		var c *pageCache
		c.put(page(1, 1))
		require.False(t, has(c, 1))
	})
}
