package dispatch

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/metrics"
	"github.com/streamer-dev/streamer/internal/sse"
)

// counts is what recMetrics recorded.
type counts struct {
	delivered, replayed, replays, cached int
	slow, deliveredCalls, paced          int
	reads, readErrors                    map[string]int
	notes                                map[string]int
}

// recMetrics records what the dispatcher reports.
type recMetrics struct {
	mu sync.Mutex
	c  counts
}

var _ Metrics = (*recMetrics)(nil)

func (m *recMetrics) with(f func(c *counts)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(&m.c)
}

func (m *recMetrics) Delivered(n int) {
	m.with(func(c *counts) { c.delivered += n; c.deliveredCalls++ })
}
func (m *recMetrics) Replayed(n int)            { m.with(func(c *counts) { c.replayed += n }) }
func (m *recMetrics) ReplayStarted()            { m.with(func(c *counts) { c.replays++ }) }
func (m *recMetrics) ReplayPaced(time.Duration) { m.with(func(c *counts) { c.paced++ }) }
func (m *recMetrics) ReplayPageCached()         { m.with(func(c *counts) { c.cached++ }) }
func (m *recMetrics) SlowConsumerDisconnected() { m.with(func(c *counts) { c.slow++ }) }
func (m *recMetrics) DBRead(kind string, _ time.Duration, failed bool) {
	m.with(func(c *counts) {
		if c.reads == nil {
			c.reads, c.readErrors = make(map[string]int), make(map[string]int)
		}
		c.reads[kind]++
		if failed {
			c.readErrors[kind]++
		}
	})
}

func (m *recMetrics) TickNotes(outcome string, n int) {
	m.with(func(c *counts) {
		if c.notes == nil {
			c.notes = make(map[string]int)
		}
		c.notes[outcome] += n
	})
}

// snapshot returns a copy of what m recorded.
func (m *recMetrics) snapshot() counts {
	var out counts
	m.with(func(c *counts) {
		out = *c
		out.reads, out.readErrors = maps.Clone(c.reads), maps.Clone(c.readErrors)
		if out.reads == nil {
			out.reads, out.readErrors = map[string]int{}, map[string]int{}
		}
		out.notes = maps.Clone(c.notes)
	})
	return out
}

func setupMetrics(t *testing.T, configure func(*Config)) (*Dispatcher, *bundle, *recMetrics) {
	t.Helper()
	m := &recMetrics{}
	d, b := setup(t, func(c *Config) {
		c.Metrics = m
		if configure != nil {
			configure(c)
		}
	})
	return d, b, m
}

// settled wakes the dispatcher twice and waits for both reads: the loop turn
// of the first has flushed its counts once the second has read.
func settled(t *testing.T, d *Dispatcher, b *bundle) {
	t.Helper()
	readCaughtUp(t, d, b)
	readCaughtUp(t, d, b)
}

func TestMetricsLiveDelivery(t *testing.T) {
	t.Parallel()
	const subs, events = 3, 7
	d, b, m := setupMetrics(t, nil)
	var live []*fakeSub
	for range subs {
		live = append(live, subscribe(t, d, b, "s"))
	}
	other := subscribe(t, d, b, "other")
	for i := range events {
		b.publish(t, "s", fmt.Sprint(i))
	}
	readCaughtUp(t, d, b)
	for _, s := range live {
		for i := range events {
			require.Equal(t, fmt.Sprint(i), s.next(t))
		}
	}
	require.Empty(t, other.frames)
	settled(t, d, b)

	got := m.snapshot()
	require.Equal(t, subs*events, got.delivered, "one per event per subscriber")
	for _, s := range live { // for the delivery lag, observed by the writer
		commits := s.committed()
		require.Len(t, commits, events, "every live frame carries its commit time")
		for _, at := range commits {
			require.Positive(t, time.Since(at))
			require.Less(t, time.Since(at), time.Hour)
		}
	}
	require.Positive(t, got.reads[metrics.ReadLive])
	require.Zero(t, got.reads[metrics.ReadReplay])
	require.Zero(t, got.replays)
	require.Zero(t, got.slow)
	// Batched: far fewer calls than deliveries.
	require.LessOrEqual(t, got.deliveredCalls, 3)
}

// TestMetricsLagFromCommitTime backdates a commit's recorded time by an
// hour before the dispatcher reads it: the commit time the frame is queued
// with must be it, which shows the delivery lag (observed by sse when the
// frame is written) is measured from streamer.commits.committed_at.
func TestMetricsLagFromCommitTime(t *testing.T) {
	t.Parallel()
	d, b, _ := setupMetrics(t, nil)
	s := subscribe(t, d, b, "s")
	b.publish(t, "s", "old")
	_, err := b.pool.Exec(context.Background(),
		"UPDATE streamer.commits SET committed_at = committed_at - interval '1 hour' WHERE seq = (SELECT max(seq) FROM streamer.commits)")
	require.NoError(t, err)
	readCaughtUp(t, d, b)
	require.Equal(t, "old", s.next(t))
	commits := s.committed()
	require.Len(t, commits, 1)
	require.GreaterOrEqual(t, time.Since(commits[0]), time.Hour)
	require.Less(t, time.Since(commits[0]), time.Hour+time.Minute)
}

func TestMetricsHeadRead(t *testing.T) {
	t.Parallel()
	d, b, m := setupMetrics(t, nil)
	require.True(t, readCaughtUp(t, d, b).HeadOnly)
	got := m.snapshot()
	require.Equal(t, 1, got.reads[metrics.ReadHead])
	require.Zero(t, got.reads[metrics.ReadLive])
	require.Zero(t, got.delivered)
}

// TestMetricsSequencerLookup: a tick's notification from a backend that
// is not the recorded sequencer's costs a look-up, counted as a read of
// its own kind.
func TestMetricsSequencerLookup(t *testing.T) {
	t.Parallel()
	d, b, m := setupMetrics(t, nil)
	toTicks(t, b.pool)
	d.Notified(1, "t1 0 1 1700000000000000 -1\n")
	require.Equal(t, uint32(1), b.sig.Untrusted.WaitOrTimeout(t))
	b.sig.LiveRead.WaitOrTimeout(t)
	require.Equal(t, 1, m.snapshot().reads[metrics.ReadSequencer])
}

// TestMetricsTickNotes: every tick notification is counted once, by what
// became of it: applied, covered by an earlier read, served by a read (the
// one after a missed note), from an untrusted sender, malformed, or
// dropped with the others waiting when too many waited.
func TestMetricsTickNotes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, b, m := setupMetrics(t, nil)
	toTicks(t, b.pool)
	s := subscribe(t, d, b, "room")
	insert := func(data string) {
		t.Helper()
		_, err := b.pool.Exec(ctx, "INSERT INTO streamer.events (stream, data) VALUES ('room', $1)", data)
		require.NoError(t, err)
	}

	// Each read's signal is taken as it comes, so that settled's reads
	// are its own.
	insert("a")
	p1 := tickPayload(t, b.pool)
	p1.to(d)
	require.Equal(t, LiveRead{Events: 1, Notified: true}, b.sig.LiveRead.WaitOrTimeout(t))
	require.Equal(t, "a", s.next(t))
	p1.to(d) // covered
	insert("b")
	tickPayload(t, b.pool) // missed
	insert("c")
	tickPayload(t, b.pool).to(d)
	require.False(t, b.sig.LiveRead.WaitOrTimeout(t).Notified, "read")
	require.Equal(t, "b", s.next(t))
	require.Equal(t, "c", s.next(t))
	h := head(t, b.pool)
	d.Notified(1, fmt.Sprintf("t2 %d %d 1700000000000000 -1\n", h, h+5))
	require.Equal(t, uint32(1), b.sig.Untrusted.WaitOrTimeout(t))
	require.False(t, b.sig.LiveRead.WaitOrTimeout(t).Notified, "read instead")
	d.Notified(1, p1[0].payload) // covered: no look-up, whoever sent it
	d.Notified(1, "t2 garbage")
	require.False(t, b.sig.LiveRead.WaitOrTimeout(t).Notified, "read instead")
	settled(t, d, b)
	got := m.snapshot()
	require.Equal(t, map[string]int{
		metrics.NoteApplied: 1, metrics.NoteCovered: 2, metrics.NoteRead: 1,
		metrics.NoteUntrusted: 1, metrics.NoteMalformed: 1,
	}, got.notes)
	require.Equal(t, 2, got.reads[metrics.ReadSequencer], "look-ups: at the first note, and for the forged one; the covered note from pid 1 needed none")

	insert("d")
	overflowNotes(t, d, b, tickPayload(t, b.pool))
	require.Equal(t, "d", s.next(t))
	settled(t, d, b)
	require.Equal(t, maxNotes+1, m.snapshot().notes[metrics.NoteDropped])
}

func TestMetricsReplay(t *testing.T) {
	t.Parallel()
	const events = 10
	d, b, m := setupMetrics(t, func(c *Config) { c.PageSize = 3; c.ReplayRate = 1e6 })
	for i := range events {
		b.publish(t, "s", fmt.Sprint(i))
	}
	var firstReads int
	for round := 1; round <= 2; round++ {
		s := newFakeSub()
		_, err := d.Subscribe(context.Background(), s, []string{"s"}, &cursor.Start, nil)
		require.NoError(t, err)
		waitLive(t, b, s)
		for i := range events {
			require.Equal(t, fmt.Sprint(i), s.next(t))
		}
		got := m.snapshot()
		require.Equal(t, round, got.replays)
		require.Equal(t, round*events, got.replayed)
		require.Equal(t, round*events, got.delivered)
		require.Empty(t, s.committed(), "replayed events carry no commit time: no lag observed")
		require.Positive(t, got.paced)
		if round == 1 {
			firstReads = got.reads[metrics.ReadReplay]
			require.GreaterOrEqual(t, firstReads, 4, "ten events in pages of three")
			require.Zero(t, got.cached)
		}
	}
	// The second replay takes the same pages: the full ones from the cache.
	got := m.snapshot()
	require.Positive(t, got.cached)
	require.Equal(t, firstReads, got.reads[metrics.ReadReplay]-firstReads+got.cached)
}

// errSub is a fakeSub that tells its close cause, as sse.Conn does.
type errSub struct{ *fakeSub }

func (s errSub) Err() error { return s.err() }

func TestMetricsSlowConsumer(t *testing.T) {
	t.Parallel()
	d, b, m := setupMetrics(t, nil)

	slow := errSub{newFakeSub()}
	slow.frames = make(chan []byte, 1)
	_, err := d.Subscribe(context.Background(), slow, []string{"s"}, nil, nil)
	require.NoError(t, err)
	waitLive(t, b, slow)

	// Closed for another reason, and not yet unsubscribed: Enqueue refuses
	// it, but it was not slow.
	gone := errSub{newFakeSub()}
	_, err = d.Subscribe(context.Background(), gone, []string{"s"}, nil, nil)
	require.NoError(t, err)
	waitLive(t, b, gone)
	gone.Close(sse.ErrClosed)

	b.publish(t, "s", "1")
	b.publish(t, "s", "2")
	readCaughtUp(t, d, b)
	require.ErrorIs(t, slow.waitClosed(t), sse.ErrSlowConsumer)
	settled(t, d, b)
	got := m.snapshot()
	require.Equal(t, 1, got.slow)
	require.Equal(t, 1, got.delivered, "the one frame that fitted")
	require.Len(t, slow.committed(), 1, "only the event that fitted")
}

func TestNilMetricsConfig(t *testing.T) {
	t.Parallel()
	d, b := setup(t, nil)
	s := subscribe(t, d, b, "s")
	b.publish(t, "s", "x")
	readCaughtUp(t, d, b)
	require.Equal(t, "x", s.next(t))
}

// TestReadCutByStopNoFailure: a read that Stop cuts short is counted as a
// read, not as a failed one.
func TestReadCutByStopNoFailure(t *testing.T) {
	t.Parallel()
	d, b, rec := setupMetrics(t, nil)
	subscribe(t, d, b, "s")
	b.publish(t, "s", "x")
	lockCommits(t, b)
	before := rec.snapshot().reads[metrics.ReadLive]
	d.Wake()
	blockedReader(t, b)
	d.Stop()
	c := rec.snapshot()
	require.Equal(t, before+1, c.reads[metrics.ReadLive], "the cut read is counted")
	require.Empty(t, c.readErrors)
}
