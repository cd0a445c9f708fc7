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

	// step puts page seq of size bytes, or with size 0 gets it (it must be
	// there), which makes it the most recently used.
	type step struct {
		seq  int64
		size int
	}
	for _, tc := range []struct {
		name          string
		steps         []step
		kept, evicted []int64
		size          int
	}{
		{
			name:    "least recently used goes first",
			steps:   []step{{1, 100}, {2, 100}, {3, 100}, {1, 0}, {4, 100}},
			kept:    []int64{1, 3, 4},
			evicted: []int64{2},
			size:    300,
		},
		{
			name:    "a big page evicts as many as it needs",
			steps:   []step{{1, 100}, {2, 100}, {3, 250}},
			kept:    []int64{3},
			evicted: []int64{1, 2},
			size:    250,
		},
		{
			name:    "a page larger than the cache is not kept",
			steps:   []step{{1, 100}, {2, 301}},
			kept:    []int64{1},
			evicted: []int64{2},
			size:    100,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newPageCache(300)
			for _, s := range tc.steps {
				if s.size == 0 {
					require.True(t, has(c, s.seq), "page %d", s.seq)
				} else {
					c.put(page(s.seq, s.size))
				}
			}
			for _, seq := range tc.evicted {
				require.False(t, has(c, seq), "page %d is evicted", seq)
			}
			for _, seq := range tc.kept {
				require.True(t, has(c, seq), "page %d is kept", seq)
			}
			require.Equal(t, tc.size, c.size)
		})
	}

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
