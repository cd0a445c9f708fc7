//go:build !linux

package sse

// closeWatchers is the number of close watcher goroutines a running Hub has.
const closeWatchers = 0
