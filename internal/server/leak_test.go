package server_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestNoGoroutinesLeftByClients is not parallel: it compares the process's
// goroutines before and after 50 clients come and go.
func TestNoGoroutinesLeftByClients(t *testing.T) {
	s := setup(t)
	before := goleak.IgnoreCurrent()

	clients := make([]*client, 50)
	for i := range clients {
		clients[i] = subscribe(t, s.url, []string{"leak", "other"}, "")
	}
	s.waitLive(t, len(clients))
	s.publish(t, "leak", "x")
	for _, c := range clients {
		require.Equal(t, "x", c.next().Data)
		c.close()
	}
	require.NoError(t, goleak.Find(before))
	// A hijacked stream notices its client left within a peek interval
	// (3s) and a sweep (1s), and Unsubscribe is then posted to the
	// dispatcher.
	require.Eventually(t, func() bool { return s.srv.OpenStreams() == 0 && s.reg.Len() == 0 },
		10*time.Second, 5*time.Millisecond)
}
