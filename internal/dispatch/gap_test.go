package dispatch

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/testsignal"
)

// noFrame checks that nothing more has been queued on s.
func (s *fakeSub) noFrame(t *testing.T) {
	t.Helper()
	select {
	case raw := <-s.frames:
		t.Fatalf("unexpected frame %q", raw)
	default:
	}
}

// publishPos publishes one event in its own transaction and returns its
// position.
func (b *bundle) publishPos(t *testing.T, stream, data string) cursor.Position {
	t.Helper()
	return b.publishAs(t, stream, data, nil)
}

// publishAs publishes one event with an audience (nil: everyone) in its own
// transaction and returns its position.
func (b *bundle) publishAs(t *testing.T, stream, data string, aud []string) cursor.Position {
	t.Helper()
	ctx := context.Background()
	var p cursor.Position
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT streamer.publish($1, $2, audience => $3)`, stream, data, aud).Scan(&p.ID))
	b.sequence(t)
	require.NoError(t, b.pool.QueryRow(ctx, `
		SELECT c.seq FROM streamer.events e JOIN streamer.commits c ON c.txid = e.txid
		WHERE e.id = $1`, p.ID).Scan(&p.Seq))
	return p
}

// pruneThrough prunes every commit up to and including seq: it backdates
// them and prunes what is older than the others.
// head returns the position before everything published so far.
func (b *bundle) head(t *testing.T) cursor.Position {
	t.Helper()
	p, err := readHead(context.Background(), b.pool)
	require.NoError(t, err)
	return p
}

func (b *bundle) pruneThrough(t *testing.T, seq int64) {
	t.Helper()
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, `UPDATE streamer.commits SET committed_at = committed_at - interval '1 day' WHERE seq <= $1`, seq)
	require.NoError(t, err)
	var n int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT streamer.prune(interval '1 hour')`).Scan(&n))
	require.Positive(t, n)
}

func gapData(h cursor.Position) string {
	return fmt.Sprintf(`{"reason":"retention","oldest":"%s"}`, h)
}

// TestGapOnResume is the acceptance scenario at the dispatcher: 200 events,
// the first 100 pruned.
func TestGapOnResume(t *testing.T) {
	t.Parallel()
	d, b := setup(t, func(c *Config) { c.PageSize = 7; c.PageCacheBytes = 1 << 20 })
	before := b.head(t)
	live := subscribe(t, d, b, "s")

	var pos []cursor.Position
	for i := 1; i <= 200; i++ {
		pos = append(pos, b.publishPos(t, "s", fmt.Sprint(i)))
		if i == 100 {
			readCaughtUp(t, d, b)
		}
	}
	readCaughtUp(t, d, b)
	b.pruneThrough(t, pos[99].Seq)
	horizon := pos[99]

	cases := []struct {
		name string
		from cursor.Position
		gap  bool
	}{
		{"BeforeHorizon", pos[49], true},
		{"AtHorizon", pos[99], false},
		{"HeadBeforeFirstBatch", before, true},
		{"AfterHorizon", pos[149], false},
	}
	subs := make([]*fakeSub, len(cases))
	for i, tc := range cases {
		subs[i] = newFakeSub()
		from := tc.from
		_, err := d.Subscribe(context.Background(), subs[i], []string{"s"}, &from, nil)
		require.NoError(t, err)
		waitLive(t, b, subs[i])
	}
	b.publish(t, "s", "201")
	readCaughtUp(t, d, b)

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := subs[i]
			if tc.gap {
				require.Equal(t, frame{event: GapEvent, data: gapData(horizon), hasData: true}, s.nextFrame(t))
			}
			first := 101
			if tc.from == pos[149] {
				first = 151
			}
			for n := first; n <= 200; n++ {
				require.Equal(t, frame{id: pos[n-1].String(), data: fmt.Sprint(n), hasData: true}, s.nextFrame(t))
			}
			require.Equal(t, "201", s.nextFrame(t).data)
			s.noFrame(t)
		})
	}
	t.Run("LiveThroughout", func(t *testing.T) {
		for n := 1; n <= 200; n++ {
			require.Equal(t, frame{id: pos[n-1].String(), data: fmt.Sprint(n), hasData: true}, live.nextFrame(t))
		}
		require.Equal(t, "201", live.nextFrame(t).data)
		live.noFrame(t)
	})
}

// TestGapPageCache: a page cached before a prune that passed its start is
// not served; the replay reads the database and reports the gap.
func TestGapPageCache(t *testing.T) {
	t.Parallel()
	d, b := setup(t, func(c *Config) { c.PageSize = 5; c.PageCacheBytes = 1 << 20 })
	start := b.head(t)
	var pos []cursor.Position
	for i := 1; i <= 20; i++ {
		pos = append(pos, b.publishPos(t, "s", fmt.Sprint(i)))
	}
	// Two replays from the same start: the second is served pages from
	// the cache, among them the one starting after event 5.
	for range 2 {
		s := newFakeSub()
		from := start
		_, err := d.Subscribe(context.Background(), s, []string{"s"}, &from, nil)
		require.NoError(t, err)
		waitLive(t, b, s)
		for n := 1; n <= 20; n++ {
			require.Equal(t, fmt.Sprint(n), s.next(t))
		}
		d.Unsubscribe(s)
	}
	require.Equal(t, pos[4], waitCacheHit(t, b, pos[4]))

	b.pruneThrough(t, pos[9].Seq)
	s := newFakeSub()
	from := pos[4]
	_, err := d.Subscribe(context.Background(), s, []string{"s"}, &from, nil)
	require.NoError(t, err)
	waitLive(t, b, s)
	require.Equal(t, frame{event: GapEvent, data: gapData(pos[9]), hasData: true}, s.nextFrame(t))
	for n := 11; n <= 20; n++ {
		require.Equal(t, fmt.Sprint(n), s.next(t))
	}
	s.noFrame(t)
}

// waitCacheHit waits for a page cache hit at p, skipping others.
func waitCacheHit(t *testing.T, b *bundle, p cursor.Position) cursor.Position {
	t.Helper()
	for {
		if got := b.sig.PageCacheHit.WaitOrTimeout(t); got == p {
			return got
		}
	}
}

// TestGapLive: a prune that overtakes the live reader gives its live
// subscribers the gap, then the events after the horizon.
func TestGapLive(t *testing.T) {
	t.Parallel()
	d, b := setup(t, nil)
	s := subscribe(t, d, b, "s")
	other := subscribe(t, d, b, "t")
	var pos []cursor.Position
	for i := 1; i <= 3; i++ {
		pos = append(pos, b.publishPos(t, "s", fmt.Sprint(i)))
	}
	b.pruneThrough(t, pos[2].Seq)
	b.publish(t, "s", "4")
	readCaughtUp(t, d, b)
	require.Equal(t, frame{event: GapEvent, data: gapData(pos[2]), hasData: true}, s.nextFrame(t))
	require.Equal(t, "4", s.next(t))
	// The horizon is global: a subscriber of another stream is told too.
	require.Equal(t, GapEvent, other.nextFrame(t).event)

	b.publish(t, "s", "5")
	readCaughtUp(t, d, b)
	require.Equal(t, "5", s.next(t))
	s.noFrame(t)
	other.noFrame(t)
}

// TestGapOutOfOrderCommit: a transaction that inserted before the pruned
// events but commits after the prune is retained and delivered, once.
func TestGapOutOfOrderCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, b := setup(t, nil)
	before := b.head(t)
	live := subscribe(t, d, b, "s")

	p1 := b.publishPos(t, "s", "1")
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SELECT streamer.publish('s', 'late')`)
	require.NoError(t, err)
	p2 := b.publishPos(t, "s", "2")
	readCaughtUp(t, d, b)
	b.pruneThrough(t, p2.Seq)
	require.NoError(t, tx.Commit(ctx))
	readCaughtUp(t, d, b)

	require.Equal(t, "1", live.next(t))
	require.Equal(t, "2", live.next(t))
	require.Equal(t, "late", live.next(t))
	live.noFrame(t)

	for _, tc := range []struct {
		name string
		from cursor.Position
		gap  bool
	}{
		{"BeforePruned", before, true},
		{"InsidePruned", p1, true},
		{"AtHorizon", p2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeSub()
			from := tc.from
			_, err := d.Subscribe(ctx, s, []string{"s"}, &from, nil)
			require.NoError(t, err)
			waitLive(t, b, s)
			if tc.gap {
				require.Equal(t, frame{event: GapEvent, data: gapData(p2), hasData: true}, s.nextFrame(t))
			}
			require.Equal(t, "late", s.next(t))
			s.noFrame(t)
		})
	}
}

// gatedSub is a fakeSub whose replay is held, after its first read, until
// the gate opens.
type gatedSub struct {
	*fakeSub
	waiting chan struct{} // closed when the replay first waits
	once    sync.Once
	gate    chan struct{}
}

func (s *gatedSub) EnqueueWait(ctx context.Context, frame []byte) error {
	s.once.Do(func() { close(s.waiting) })
	select {
	case <-s.gate:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	return s.fakeSub.EnqueueWait(ctx, frame)
}

// TestGapAtJoin: a prune that overtakes the live reader while a subscriber
// replays, after its replay's last read, gives it the gap when it joins,
// between its replayed and its buffered events.
func TestGapAtJoin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, b := setup(t, nil)
	start := b.head(t)
	for i := 1; i <= 3; i++ {
		b.publish(t, "s", fmt.Sprint(i))
	}
	s := &gatedSub{fakeSub: newFakeSub(), waiting: make(chan struct{}), gate: make(chan struct{})}
	from := start
	_, err := d.Subscribe(ctx, s, []string{"s"}, &from, nil)
	require.NoError(t, err)
	testsignal.Receive(t, s.waiting, testsignal.Timeout, "the replay did not read")
	p4 := b.publishPos(t, "s", "4")
	b.pruneThrough(t, p4.Seq)
	b.publish(t, "s", "5")
	readCaughtUp(t, d, b)
	close(s.gate)
	waitLive(t, b, s)

	for n := 1; n <= 3; n++ {
		require.Equal(t, fmt.Sprint(n), s.next(t))
	}
	require.Equal(t, frame{event: GapEvent, data: gapData(p4), hasData: true}, s.nextFrame(t))
	require.Equal(t, "5", s.next(t))
	s.noFrame(t)
}

// TestPageCacheAdvance: pages that start before the horizon are dropped
// and not kept; the others stay.
func TestPageCacheAdvance(t *testing.T) {
	t.Parallel()
	c := newPageCache(1 << 20)
	put := func(seq int64) {
		c.put(&cachedPage{key: keyFor(cursor.Position{Seq: seq, ID: seq}, nil, newAudience(nil)), size: 100})
	}
	has := func(seq int64) bool {
		_, ok := c.get(keyFor(cursor.Position{Seq: seq, ID: seq}, nil, newAudience(nil)))
		return ok
	}
	put(1)
	put(5)
	put(9)
	c.advance(cursor.Position{Seq: 5, ID: 5})
	require.False(t, has(1), "starts before the horizon")
	require.True(t, has(5), "starts at the horizon: nothing after it is pruned")
	require.True(t, has(9))
	require.Equal(t, 200, c.size)
	put(3)
	require.False(t, has(3), "read before the prune, put after it")
	c.advance(cursor.Position{Seq: 2, ID: 2}) // an older horizon changes nothing
	require.True(t, has(5))
	var nilCache *pageCache
	nilCache.advance(cursor.Position{Seq: 1}) // disabled cache
}
