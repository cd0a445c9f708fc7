package dispatch

import (
	"container/list"
	"slices"
	"strings"
	"sync"

	"github.com/streamer-dev/streamer/internal/cursor"
)

// pageCache holds full replay pages, encoded, for the replay workers to
// share: clients that resume from the same position on the same streams (a
// reconnect storm after a deploy or a network blip) read and encode each page
// once. Only full pages are kept: a full page is fixed history, the same
// whenever it is read, while a page that reached the head would hide what
// committed after it. Bounded in bytes; the least recently used page goes
// first. Safe for concurrent use.
type pageCache struct {
	mu    sync.Mutex
	max   int
	size  int
	order *list.List // of *cachedPage, most recently used first
	pages map[pageKey]*list.Element
	// horizon: pages that start before it are dropped and not kept (gap.go).
	horizon cursor.Position
}

// pageKey names a page: where it starts, which streams, and whose view of
// it, since the same page holds different frames for different audiences.
type pageKey struct {
	from     cursor.Position
	streams  string // sorted stream names joined by NUL; "" for every stream
	audience string // audience.cacheKey
}

type cachedPage struct {
	key    pageKey
	frames [][]byte
	last   []cursor.Position // each frame's position
	// events counts the event frames; a last frame beyond them carries
	// only an id.
	events int
	next   cursor.Position
	size   int
}

func newPageCache(maxBytes int) *pageCache {
	return &pageCache{max: maxBytes, order: list.New(), pages: make(map[pageKey]*list.Element)}
}

func keyFor(from cursor.Position, streams []string, aud *audience) pageKey {
	k := pageKey{from: from, audience: aud.cacheKey}
	if streams != nil {
		k.streams = strings.Join(slices.Sorted(slices.Values(streams)), "\x00")
	}
	return k
}

func (c *pageCache) get(k pageKey) (*cachedPage, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.pages[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cachedPage), true
}

func (c *pageCache) put(p *cachedPage) {
	if c == nil || p.size > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pages[p.key]; ok {
		return // another worker read it meanwhile; same content
	}
	if p.key.from.Less(c.horizon) {
		return // read before a prune that has since passed its start
	}
	c.pages[p.key] = c.order.PushFront(p)
	c.size += p.size
	for c.size > c.max {
		old := c.order.Remove(c.order.Back()).(*cachedPage)
		delete(c.pages, old.key)
		c.size -= old.size
	}
}
