package main

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordingPublisher keeps every event's data.
type recordingPublisher struct {
	mu   sync.Mutex
	data []string
}

func (p *recordingPublisher) publish(_ context.Context, _, data []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.data = append(p.data, data...)
	return nil
}

func (p *recordingPublisher) close() {}

// stamps returns the time in each event's data.
func (p *recordingPublisher) stamps(t *testing.T) []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]int64, len(p.data))
	for i, d := range p.data {
		f := strings.Fields(d)
		require.GreaterOrEqual(t, len(f), 3, "event %q", d)
		ns, err := strconv.ParseInt(f[2], 10, 64)
		require.NoError(t, err)
		out[i] = ns
	}
	return out
}

func TestPacerStampDue(t *testing.T) {
	t.Parallel()
	const rate = 2000 // events/s: a batch of ~10 every 5 ms tick
	t.Run("stamped with the schedule", func(t *testing.T) {
		t.Parallel()
		pub := &recordingPublisher{}
		p := newPacer(pub, rate, 40, oneStream("s"))
		p.stampDue = true
		before := time.Now().UnixNano()
		p.run(context.Background(), 50*time.Millisecond, nil)
		st := pub.stamps(t)
		require.NotEmpty(t, st)
		assert.GreaterOrEqual(t, st[0], before)
		for i := range st {
			// Event i was due i/rate after the first, whenever it went out.
			assert.InDelta(t, float64(i)*1e9/rate, float64(st[i]-st[0]), 1, "event %d", i)
		}
		// A second run has its own schedule, from its own start.
		n := len(st)
		mid := time.Now().UnixNano()
		p.run(context.Background(), 20*time.Millisecond, nil)
		st = pub.stamps(t)
		require.Greater(t, len(st), n)
		assert.GreaterOrEqual(t, st[n], mid)
		assert.InDelta(t, float64(len(st)-1-n)*1e9/rate, float64(st[len(st)-1]-st[n]), 1)
	})
	t.Run("stamped when sent", func(t *testing.T) {
		t.Parallel()
		pub := &recordingPublisher{}
		p := newPacer(pub, rate, 40, oneStream("s"))
		p.run(context.Background(), 50*time.Millisecond, nil)
		st := pub.stamps(t)
		distinct := map[int64]bool{}
		for _, ns := range st {
			distinct[ns] = true
		}
		// ~10 events a tick, each tick's batch stamped once.
		assert.Less(t, len(distinct), len(st)/2, "a batch's events share the time it was sent")
	})
}

// slowPublisher takes rtt per publish, as a COMMIT's round trip would.
type slowPublisher struct {
	recordingPublisher
	rtt   time.Duration
	calls int
}

func (p *slowPublisher) publish(ctx context.Context, streams, data []string) error {
	time.Sleep(p.rtt)
	p.calls++ // the pacer publishes from one goroutine
	return p.recordingPublisher.publish(ctx, streams, data)
}

// TestPacerOneBatchPerTick: a publish round trip that lets the next event
// fall due does not make a second transaction in the same tick: at 1,000
// events/s with a 1.5 ms round trip the pacer sends one batch per 5-ms
// tick (plus catch-ups only when a whole tick's worth is due), not two.
// Sending the due event at once makes about 2.3 batches a tick; the bound
// leaves a quarter for catch-ups after scheduling stalls on a busy machine
// (one stall in CI made 43 batches in 40 ticks).
func TestPacerOneBatchPerTick(t *testing.T) {
	t.Parallel()
	pub := &slowPublisher{rtt: 1500 * time.Microsecond}
	p := newPacer(pub, 1000, 40, oneStream("s"))
	took := p.run(context.Background(), 200*time.Millisecond, nil)
	ticks := int(took / (5 * time.Millisecond))
	require.Positive(t, pub.calls)
	assert.LessOrEqual(t, pub.calls, ticks*5/4+2, "batches in %d ticks", ticks)
	// Behind by at most the last tick and a stall: never ahead.
	assert.LessOrEqual(t, float64(len(pub.data)), 1000*took.Seconds()+1, "events: never ahead of the rate")
	assert.InDelta(t, 1000*took.Seconds(), float64(len(pub.data)), 25, "events: the rate is kept")
}
