//go:build linux

package sse

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// closeWatchers is the number of close watcher goroutines a running Hub has.
const closeWatchers = 1

// TestHubWatchesClose: on Linux a departed client is noticed without a
// peek and without a write: the hub here would peek only after an hour of
// quiet, and nothing is written.
func TestHubWatchesClose(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		reset bool
	}{{"close", false}, {"reset", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startedHub(t, HubOptions{PeekInterval: time.Hour})
			c, client, closed := attachTo(t, h, Options{})
			if tc.reset {
				require.NoError(t, client.(*net.TCPConn).SetLinger(0))
			}
			require.NoError(t, client.Close())
			require.ErrorIs(t, recv(t, closed, "closed peer not noticed"), ErrPeerClosed)
			require.ErrorIs(t, c.Err(), ErrPeerClosed)
			require.Eventually(t, func() bool {
				h.mu.Lock()
				defer h.mu.Unlock()
				return len(h.watched) == 0
			}, 5*time.Second, time.Millisecond, "a finished Conn stays registered")
		})
	}
}

// TestHubWatchedClientStaysOpen: an open client that sends nothing and
// reads everything is never closed by the watch, however many Conns come
// and go beside it (their descriptors being reused).
func TestHubWatchedClientStaysOpen(t *testing.T) {
	t.Parallel()
	h := startedHub(t, HubOptions{PeekInterval: time.Hour})
	stay, _, _ := attachTo(t, h, Options{})
	for range 20 {
		_, client, closed := attachTo(t, h, Options{})
		require.NoError(t, client.Close())
		require.ErrorIs(t, recv(t, closed, "closed peer not noticed"), ErrPeerClosed)
	}
	require.NoError(t, stay.Err())
}
