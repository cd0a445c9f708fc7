package listener

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/metrics"
	"github.com/streamer-dev/streamer/internal/pgtest"
)

type countingMetrics struct{ reconnects atomic.Int64 }

func (m *countingMetrics) ListenerReconnected() { m.reconnects.Add(1) }

var (
	_ Metrics = (*countingMetrics)(nil)
	_ Metrics = (*metrics.Metrics)(nil)
)

// TestMetricsCountReconnects: the first LISTEN is not a reconnect; each
// LISTEN after a lost connection is one.
func TestMetricsCountReconnects(t *testing.T) {
	t.Parallel()
	m := &countingMetrics{}
	l, bundle := setup(t, func(c *Config) { c.Metrics = m })
	pid := start(t, l, bundle)
	require.Zero(t, m.reconnects.Load())

	for i := range 2 {
		var terminated bool
		require.NoError(t, pgtest.Admin(t).QueryRow(context.Background(),
			"SELECT pg_terminate_backend($1)", int32(pid)).Scan(&terminated))
		require.True(t, terminated)
		bundle.signals.BackoffError.WaitOrTimeout(t)
		pid = bundle.signals.Listening.WaitOrTimeout(t)
		require.Equal(t, 0, bundle.signals.Woke.WaitOrTimeout(t))
		require.EqualValues(t, i+1, m.reconnects.Load())
	}
}
