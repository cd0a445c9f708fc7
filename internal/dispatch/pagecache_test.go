package dispatch

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/cursor"
)

// anon is the audience of an anonymous connection.
var anon = newAudience(nil)

func TestPageCacheEviction(t *testing.T) {
	t.Parallel()
	page := func(seq int64, size int) *cachedPage {
		return &cachedPage{key: keyFor(cursor.After(seq), []string{"s"}, anon), size: size}
	}
	has := func(c *pageCache, seq int64) bool {
		_, ok := c.get(keyFor(cursor.After(seq), []string{"s"}, anon))
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
		c.put(&cachedPage{key: keyFor(cursor.Start, []string{"a", "b"}, anon), size: 1})
		_, ok := c.get(keyFor(cursor.Start, []string{"b", "a"}, anon))
		require.True(t, ok)
		_, ok = c.get(keyFor(cursor.Start, []string{"a"}, anon))
		require.False(t, ok)
		_, ok = c.get(keyFor(cursor.Start, nil, anon))
		require.False(t, ok)
	})

	t.Run("audience is part of the key", func(t *testing.T) {
		t.Parallel()
		c := newPageCache(300)
		c.put(&cachedPage{key: keyFor(cursor.Start, nil, newAudience([]string{"a", "b"})), size: 1})
		_, ok := c.get(keyFor(cursor.Start, nil, newAudience([]string{"b", "a", "a"})))
		require.True(t, ok, "the same keys in another order")
		for _, keys := range [][]string{nil, {"a"}, {"ab"}, {"a", "b", "c"}, {"1:a1:b"}} {
			_, ok = c.get(keyFor(cursor.Start, nil, newAudience(keys)))
			require.False(t, ok, "keys %q", keys)
		}
	})

	t.Run("nil cache is disabled", func(t *testing.T) {
		t.Parallel()
		var c *pageCache
		c.put(page(1, 1))
		require.False(t, has(c, 1))
	})
}
