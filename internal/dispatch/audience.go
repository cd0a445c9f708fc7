package dispatch

import (
	"slices"
	"strconv"
	"strings"
)

// audience is a connection's audience keys: its token's sub and its
// streamer.audience values. No keys: an anonymous connection, which sees
// only events whose audience is NULL.
type audience struct {
	keys []string // sorted, without duplicates; non-nil (SQL: an empty array, not NULL)
	// cacheKey tells audiences apart in the replay page cache.
	cacheKey string
}

// newAudience returns the audience of a connection with keys (nil or empty:
// anonymous).
func newAudience(keys []string) *audience {
	sorted := slices.Compact(slices.Sorted(slices.Values(keys)))
	if sorted == nil {
		sorted = []string{}
	}
	// Length-prefixed, so that no two different key sets share a cache key
	// whatever characters the keys hold.
	var b strings.Builder
	for _, k := range sorted {
		b.WriteString(strconv.Itoa(len(k)))
		b.WriteByte(':')
		b.WriteString(k)
	}
	return &audience{keys: sorted, cacheKey: b.String()}
}

// sees reports whether a connection with this audience may see ev, read by
// a live read (ev.audience set; see readPage). It allocates nothing: the
// sets are small (a token's keys; at most 1,000 values per event), so a
// linear scan of each beats building a map.
func (a *audience) sees(ev *event) bool {
	if ev.audience == nil {
		return true
	}
	for _, k := range a.keys {
		if slices.Contains(ev.audience, k) {
			return true
		}
	}
	return false
}

// sqlKeys is the keys as the replay query's text[] parameter.
func (a *audience) sqlKeys() []string { return a.keys }
