package server_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamer-dev/streamer/internal/sse"
)

// TestNoGoroutinesLeftByClients is not parallel: it compares the process's
// goroutines before and after 50 clients come and go. In hijack mode a
// stream owns no goroutine, so what it does own is checked too: its Conn
// on the hub, which must be released, and the hub's workers, which must
// end with the server.
func TestNoGoroutinesLeftByClients(t *testing.T) {
	s := setup(t)
	before := goleak.IgnoreCurrent()
	workers := s.srv.HubStats().Goroutines
	require.Positive(t, workers, "the hub runs while the server does")

	clients := make([]*client, 50)
	for i := range clients {
		clients[i] = subscribe(t, s.url, []string{"leak", "other"}, "")
	}
	s.waitLive(t, len(clients))
	s.publish(t, "leak", "x")
	for _, c := range clients {
		require.Equal(t, "x", c.next().Data)
	}
	// Every stream was hijacked: its Conn is on the hub, no more
	// goroutines write them than before.
	require.Equal(t, sse.HubStats{Conns: len(clients), Goroutines: workers}, s.srv.HubStats())

	for _, c := range clients {
		c.close()
	}
	require.NoError(t, goleak.Find(before))
	// A hijacked stream notices its client left within a peek interval
	// (3s) and a sweep (1s), and then releases its Conn and unsubscribes.
	require.Eventually(t, func() bool {
		return s.srv.OpenStreams() == 0 && s.reg.Len() == 0 && s.srv.HubStats().Conns == 0
	}, 10*time.Second, 5*time.Millisecond)

	s.shutdown()
	require.Equal(t, sse.HubStats{}, s.srv.HubStats(), "the hub's workers ended with the server")
}
