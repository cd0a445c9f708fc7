package batch

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/metrics"
)

// recMetrics records each committed batch's size.
type recMetrics struct {
	mu      sync.Mutex
	batches []int
}

func (m *recMetrics) Published(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batches = append(m.batches, n)
}

func (m *recMetrics) get() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int(nil), m.batches...)
}

var (
	_ Metrics = (*recMetrics)(nil)
	_ Metrics = (*metrics.Metrics)(nil)
)

// TestMetricsCountCommittedBatches: one count per committed transaction
// with its number of events; refused events are not counted.
func TestMetricsCountCommittedBatches(t *testing.T) {
	t.Parallel()
	m := &recMetrics{}
	var commits atomic.Int64
	b, bb := setup(t, func(c *Config, _ *Batcher) {
		c.MaxDelay = time.Hour
		c.Metrics = m
		c.OnCommit = func() { commits.Add(1) }
	})
	bb.signals.Enqueued.Init()

	for i := range 4 {
		require.NoError(t, b.Enqueue([]Event{ev("s", i)}))
	}
	last := publishAsync(b, context.Background(), []Event{ev("p", 0), ev("p", 1)})
	for range 5 {
		bb.signals.Enqueued.WaitOrTimeout(t)
	}
	require.NoError(t, b.Flush(context.Background()))
	require.NoError(t, waitResult(t, last).err)
	require.Equal(t, []int{6}, m.get(), "one transaction of six events")
	require.Equal(t, int64(1), commits.Load(), "OnCommit once per transaction, before its callers hear")

	t.Run("refused events are not counted", func(t *testing.T) {
		_, err := bb.pool.Exec(context.Background(),
			"ALTER TABLE streamer.events ADD CONSTRAINT test_poison_rule CHECK (data <> 'poison')")
		require.NoError(t, err)
		r := waitResult(t, publishAsync(b, context.Background(), []Event{{Stream: "s", Data: "poison"}}))
		require.Error(t, r.err)
		r = waitResult(t, publishAsync(b, context.Background(), []Event{ev("s", 9)}))
		require.NoError(t, r.err)
		require.Equal(t, []int{6, 1}, m.get())
		require.Equal(t, int64(2), commits.Load(), "not for the refused one")
	})
}
