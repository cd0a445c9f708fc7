package sse

import (
	"errors"
	"net"
)

// abortIfSlow makes closing a slow consumer's connection an abort: with
// SO_LINGER 0, close(2) drops what the kernel still holds for the client
// and sends RST, instead of leaving an orphaned socket draining its send
// buffer (up to the autotuned several MiB) to a client that cannot keep
// up, for as long as the client takes. The client loses nothing it would
// otherwise keep: it resumes from the last event it processed, and learns
// at once that it must.
func abortIfSlow(nc net.Conn, cause error) {
	if !errors.Is(cause, ErrSlowConsumer) {
		return
	}
	if l, ok := nc.(interface{ SetLinger(sec int) error }); ok {
		_ = l.SetLinger(0)
	}
}
