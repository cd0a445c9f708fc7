package dispatch

import (
	"hash/maphash"
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
	// mask is keys' audienceMask; bits[i] is keys[i]'s bit in it.
	mask uint64
	bits []uint64
}

// maskSeed seeds audienceMask, the same for every audience and event of
// the process.
var maskSeed = maphash.MakeSeed()

// audienceMask sets one bit of 64 for each value, chosen by its hash: two
// sets that share a value share that value's bit, so masks without a
// common bit mean sets without a common value (the converse need not hold).
func audienceMask(values []string) uint64 {
	var m uint64
	for _, v := range values {
		m |= maskBit(v)
	}
	return m
}

func maskBit(v string) uint64 { return 1 << (maphash.String(maskSeed, v) % 64) }

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
	a := &audience{keys: sorted, cacheKey: b.String(), bits: make([]uint64, len(sorted))}
	for i, k := range sorted {
		a.bits[i] = maskBit(k)
		a.mask |= a.bits[i]
	}
	return a
}

// sees reports whether a connection with this audience may see ev, read by
// a live read (ev.audience set; see readPage). It allocates nothing: when
// fanout has set ev.audMask, masks without a common bit settle most hidden
// events with one AND, and only keys whose bit the event has are looked
// for; the sets being small (a token's keys; at most 1,000 values per
// event), a linear scan of each beats building a map.
func (a *audience) sees(ev *event) bool {
	if ev.audience == nil {
		return true
	}
	if ev.audMask != 0 && ev.audMask&a.mask == 0 {
		return false
	}
	for i, k := range a.keys {
		if ev.audMask != 0 && ev.audMask&a.bits[i] == 0 {
			continue // not among the event's values
		}
		if slices.Contains(ev.audience, k) {
			return true
		}
	}
	return false
}

// sqlKeys is the keys as the replay query's text[] parameter.
func (a *audience) sqlKeys() []string { return a.keys }
