package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
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
	publish := func(t *testing.T, base string, n int) {
		var body []map[string]string
		for i := range n {
			body = append(body, map[string]string{"stream": "r", "data": fmt.Sprint(i)})
		}
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		resp, err := http.Post(base+"/publish", "application/json", strings.NewReader(string(raw)))
		require.NoError(t, err)
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, string(out))
	}

	t.Run("On", func(t *testing.T) {
		t.Parallel()
		base := startServe(t, "--allow-anonymous-publish", "--shutdown-timeout", "2s", "--retention", "1s")
		live := subscribeSSE(t, base, "r", "")
		require.Eventually(t, func() bool {
			return scrapeMetrics(t, base).value("streamer_subscribers_live") == 1
		}, testsignal.Timeout, 10*time.Millisecond)
		publish(t, base, 5)
		for i := range 5 {
			require.Equal(t, fmt.Sprint(i), nextEvent(t, live).data)
		}
		// A second later all five are past the retention; a pass runs at
		// least every half second.
		require.Eventually(t, func() bool {
			return scrapeMetrics(t, base).value("streamer_pruned_events_total") == 5
		}, testsignal.Timeout, 50*time.Millisecond, "the five events were never pruned")
		// Delivery goes on after pruning.
		publish(t, base, 1)
		require.Equal(t, "0", nextEvent(t, live).data)
	})

	t.Run("Off", func(t *testing.T) {
		t.Parallel()
		base := startServe(t, "--allow-anonymous-publish", "--shutdown-timeout", "2s", "--retention", "0")
		publish(t, base, 3)
		live := subscribeSSE(t, base, "r", "")
		require.Eventually(t, func() bool {
			return scrapeMetrics(t, base).value("streamer_subscribers_live") == 1
		}, testsignal.Timeout, 10*time.Millisecond)
		publish(t, base, 1)
		require.Equal(t, "0", nextEvent(t, live).data)
		require.Zero(t, scrapeMetrics(t, base).value("streamer_pruned_events_total"))
	})
}
