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
	require.Equal(t, 0, s.srv.OpenStreams())
	// Unsubscribe is posted to the dispatcher; wait for it to be handled.
	require.Eventually(t, func() bool { return s.reg.Len() == 0 }, 5*time.Second, time.Millisecond)
}
