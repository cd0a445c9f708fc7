package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/testsignal"
)

// serve runs the retention service when STREAMER_RETENTION is set: events
// older than it disappear in the background, /metrics counts them, and the
// server goes on delivering; with 0 nothing is pruned.
func TestServeRetention(t *testing.T) {
	t.Parallel()
	t.Run("On", func(t *testing.T) {
		t.Parallel()
		base := startServe(t, "--allow-anonymous-publish", "--shutdown-timeout", "2s", "--retention", "1s")
		live := subscribeSSE(t, base, "r", "")
		require.Eventually(t, func() bool {
			return scrapeMetrics(t, base).value("streamer_subscribers_live") == 1
		}, testsignal.Timeout, 10*time.Millisecond)
		postEvents(t, base, "r", 0, 5)
		for i := range 5 {
			require.Equal(t, fmt.Sprint(i), nextEvent(t, live).data)
		}
		// A second later all five are past the retention; a pass runs at
		// least every half second.
		require.Eventually(t, func() bool {
			return scrapeMetrics(t, base).value("streamer_pruned_events_total") == 5
		}, testsignal.Timeout, 50*time.Millisecond, "the five events were never pruned")
		// Delivery goes on after pruning.
		postEvents(t, base, "r", 0, 1)
		require.Equal(t, "0", nextEvent(t, live).data)
	})

	t.Run("Off", func(t *testing.T) {
		t.Parallel()
		base := startServe(t, "--allow-anonymous-publish", "--shutdown-timeout", "2s", "--retention", "0")
		postEvents(t, base, "r", 0, 3)
		live := subscribeSSE(t, base, "r", "")
		require.Eventually(t, func() bool {
			return scrapeMetrics(t, base).value("streamer_subscribers_live") == 1
		}, testsignal.Timeout, 10*time.Millisecond)
		postEvents(t, base, "r", 0, 1)
		require.Equal(t, "0", nextEvent(t, live).data)
		require.Zero(t, scrapeMetrics(t, base).value("streamer_pruned_events_total"))
	})
}
