// Package registry is the one index of live SSE subscribers: which
// connections receive each stream's live events.
//
// # Overview
//
// The dispatcher is the only writer: it adds a subscriber once its replay is
// done (from then on the subscriber receives live events) and removes it
// when it disconnects, is dropped as too slow, or the dispatcher stops.
// Any goroutine may read it concurrently with that writer: the fan-out
// looks up a stream's subscribers (Lookup), the metrics handler counts them
// (Len, Streams), and ForEach visits every live subscriber for whoever needs
// them all at once. Subscribers still replaying are not in it; the
// dispatcher tracks those itself.
//
// Each stream keeps a set of subscribers and an immutable snapshot slice
// built from it on the first Lookup after a change, so a reader iterates
// without holding a lock and without copying, and a storm of connects to one
// stream costs O(1) per connect rather than a copy of the stream's whole
// list each time.
//
// # Invariants
//
//   - A slice returned by Lookup is never modified afterwards.
//   - A subscriber is listed under exactly the streams it was added with,
//     until it is removed.
//   - Len counts subscribers, not (subscriber, stream) pairs; Streams counts
//     the streams that have at least one subscriber.
//   - Every method is safe to call concurrently with every other; callers
//     keep a single writer so that Add and Remove of one subscriber are
//     ordered.
package registry
