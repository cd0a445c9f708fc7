package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/testsignal"
)

// TestCollectAfterBurst: once BurstConnections streams were taken over
// and arrivals stopped, the server collects once; not before the count is
// reached, and not again without new connections.
func TestCollectAfterBurst(t *testing.T) {
	t.Parallel()
	const (
		burst = 20
		tick  = 20 * time.Millisecond
		quiet = 15 * tick // long enough for a collection that should come
	)
	collected := make(chan struct{}, 10)
	s := setup(t, func(o *stackOpts) {
		o.server.BurstConnections = burst
		o.server.BurstTick = tick
		o.server.BurstCollect = func() { collected <- struct{}{} }
	})
	open := func(n int) {
		for i := range n {
			c := subscribe(t, s.url, []string{fmt.Sprintf("burst-%d", i)}, "")
			t.Cleanup(c.close)
		}
	}
	requireNone := func(why string) {
		t.Helper()
		select {
		case <-collected:
			t.Fatal("collected " + why)
		case <-time.After(quiet):
		}
	}

	open(burst - 1)
	requireNone("before the burst reached BurstConnections")
	open(1)
	testsignal.Receive(t, collected, 10*time.Second, "no collection after the burst")
	requireNone("again without new connections")
	require.Len(t, collected, 0)
}
