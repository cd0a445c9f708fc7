// Package registry indexes live SSE subscribers by stream.
//
// # Overview
//
// The dispatcher adds a subscriber once its replay is done and removes it
// when it disconnects; the dispatcher's fan-out and anything else (shutdown,
// metrics) read it concurrently. Each stream's subscribers are kept as an
// immutable slice that is replaced, never changed, on Add and Remove, so a
// reader iterates a snapshot without holding a lock and without copying.
//
// # Invariants
//
//   - A slice returned by Lookup is never modified afterwards.
//   - A subscriber is listed under exactly the streams it was added with,
//     until it is removed.
//   - Len counts subscribers, not (subscriber, stream) pairs.
package registry

import (
	"slices"
	"sync"
)

// Registry maps stream names to subscribers. The zero value is not usable;
// call New.
type Registry[S comparable] struct {
	mu      sync.RWMutex
	streams map[string][]S
	subs    map[S][]string
}

// New returns an empty registry.
func New[S comparable]() *Registry[S] {
	return &Registry[S]{streams: make(map[string][]S), subs: make(map[S][]string)}
}

// Add lists s under each of streams. Adding a subscriber that is already
// present replaces its streams.
func (r *Registry[S]) Add(s S, streams []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(s)
	own := slices.Clone(streams)
	r.subs[s] = own
	for _, name := range own {
		old := r.streams[name]
		next := make([]S, len(old), len(old)+1)
		copy(next, old)
		r.streams[name] = append(next, s)
	}
}

// Remove drops s from every stream; it reports whether s was present.
func (r *Registry[S]) Remove(s S) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.removeLocked(s)
}

func (r *Registry[S]) removeLocked(s S) bool {
	streams, ok := r.subs[s]
	if !ok {
		return false
	}
	delete(r.subs, s)
	for _, name := range streams {
		old := r.streams[name]
		if len(old) == 1 {
			delete(r.streams, name)
			continue
		}
		next := make([]S, 0, len(old)-1)
		for _, o := range old {
			if o != s {
				next = append(next, o)
			}
		}
		r.streams[name] = next
	}
	return true
}

// Lookup returns a snapshot of the subscribers of stream. The caller must not
// modify it.
func (r *Registry[S]) Lookup(stream string) []S {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.streams[stream]
}

// Len returns the number of subscribers.
func (r *Registry[S]) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.subs)
}

// Streams returns the number of streams with at least one subscriber.
func (r *Registry[S]) Streams() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.streams)
}

// All returns a snapshot of every subscriber.
func (r *Registry[S]) All() []S {
	r.mu.RLock()
	defer r.mu.RUnlock()
	all := make([]S, 0, len(r.subs))
	for s := range r.subs {
		all = append(all, s)
	}
	return all
}
