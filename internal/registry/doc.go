// Package registry indexes live SSE subscribers by stream.
//
// # Overview
//
// The dispatcher adds a subscriber once its replay is done and removes it
// when it disconnects; the dispatcher's fan-out and anything else (shutdown,
// metrics) read it concurrently. Each stream keeps a set of subscribers and
// an immutable snapshot slice built from it on the first Lookup after a
// change, so a reader iterates without holding a lock and without copying,
// and a storm of connects to one stream costs O(1) per connect rather than a
// copy of the stream's whole list each time.
//
// # Invariants
//
//   - A slice returned by Lookup is never modified afterwards.
//   - A subscriber is listed under exactly the streams it was added with,
//     until it is removed.
//   - Len counts subscribers, not (subscriber, stream) pairs.
package registry
