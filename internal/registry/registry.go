package registry

import (
	"slices"
	"sync"
)

// Registry maps stream names to live subscribers. One goroutine writes it
// (Add, Remove); any number read it concurrently. The zero value is not
// usable; call New.
type Registry[S comparable] struct {
	mu      sync.RWMutex
	streams map[string]*entry[S]
	subs    map[S][]string // each subscriber's streams, as added
}

type entry[S comparable] struct {
	set  map[S]struct{}
	snap []S // nil when stale; rebuilt by Lookup
}

// New returns an empty registry.
func New[S comparable]() *Registry[S] {
	return &Registry[S]{streams: make(map[string]*entry[S]), subs: make(map[S][]string)}
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
		e := r.streams[name]
		if e == nil {
			e = &entry[S]{set: make(map[S]struct{})}
			r.streams[name] = e
		}
		e.set[s] = struct{}{}
		e.snap = nil
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
		e := r.streams[name]
		delete(e.set, s)
		if len(e.set) == 0 {
			delete(r.streams, name)
			continue
		}
		e.snap = nil
	}
	return true
}

// Lookup returns a snapshot of the subscribers of stream. The caller must not
// modify it.
func (r *Registry[S]) Lookup(stream string) []S {
	r.mu.RLock()
	e := r.streams[stream]
	var snap []S
	if e != nil {
		snap = e.snap
	}
	r.mu.RUnlock()
	if e == nil || snap != nil {
		return snap
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	e = r.streams[stream]
	if e == nil {
		return nil
	}
	if e.snap == nil {
		e.snap = make([]S, 0, len(e.set))
		for s := range e.set {
			e.snap = append(e.snap, s)
		}
	}
	return e.snap
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

// AppendStreams appends the name of every stream with at least one
// subscriber to dst, in no particular order, and returns the result.
func (r *Registry[S]) AppendStreams(dst []string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for name := range r.streams {
		dst = append(dst, name)
	}
	return dst
}

// ForEach calls f with every subscriber, in no particular order, until f
// returns false. It works on a snapshot taken first, so f may take as long
// as it likes and may even cause the subscriber to be removed.
func (r *Registry[S]) ForEach(f func(S) bool) {
	r.mu.RLock()
	all := make([]S, 0, len(r.subs))
	for s := range r.subs {
		all = append(all, s)
	}
	r.mu.RUnlock()
	for _, s := range all {
		if !f(s) {
			return
		}
	}
}
