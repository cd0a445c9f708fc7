package dispatch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/testsignal"
)

// frame is one parsed frame: its id, type, and data when it has any.
type frame struct {
	id, event string
	data      string
	hasData   bool
}

func parseFrame(t *testing.T, f []byte) frame {
	t.Helper()
	var fr frame
	for line := range strings.SplitSeq(strings.TrimSuffix(string(f), "\n\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "id: "):
			fr.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			fr.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			fr.data, fr.hasData = strings.TrimPrefix(line, "data: "), true
		}
	}
	if fr.event != GapEvent { // the gap frame alone carries no id
		require.NotEmpty(t, fr.id, "frame without id: %q", f)
	}
	return fr
}

// nextFrame returns s's next frame, failing after testsignal.Timeout.
func (s *fakeSub) nextFrame(t *testing.T) frame {
	t.Helper()
	return parseFrame(t, testsignal.Receive(t, s.frames, testsignal.Timeout, "no frame arrived"))
}

// until reads s's frames up to and including the event frame whose data is
// last, and returns them all.
func (s *fakeSub) until(t *testing.T, last string) []frame {
	t.Helper()
	var got []frame
	for {
		fr := s.nextFrame(t)
		got = append(got, fr)
		if fr.hasData && fr.data == last {
			return got
		}
	}
}

// dataOf returns the data of the event frames among frames.
func dataOf(frames []frame) []string {
	var data []string
	for _, f := range frames {
		if f.hasData {
			data = append(data, f.data)
		}
	}
	return data
}

// subscribeAs subscribes a new fakeSub with audience keys from a position
// (nil: from now) and waits until it is live.
func subscribeAs(t *testing.T, d *Dispatcher, b *bundle, keys []string, from *cursor.Position, streams ...string) *fakeSub {
	t.Helper()
	s := newFakeSub()
	_, err := d.Subscribe(context.Background(), s, streams, from, keys)
	require.NoError(t, err)
	waitLive(t, b, s)
	return s
}

func (b *bundle) publishTo(t *testing.T, stream, data string, aud []string) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), "SELECT streamer.publish($1, $2, audience => $3)", stream, data, aud)
	require.NoError(t, err)
	b.sequence(t)
}

// visibleOrder returns the data of the events on stream, in delivery order,
// that a connection with keys may see (computed in Go from every row).
func (b *bundle) visibleOrder(t *testing.T, stream string, keys []string) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `
		SELECT e.data, e.audience FROM streamer.events e JOIN streamer.commits c USING (txid)
		WHERE e.stream = $1 ORDER BY c.seq, e.id`, stream)
	require.NoError(t, err)
	defer rows.Close()
	aud := newAudience(keys)
	var got []string
	for rows.Next() {
		var ev event
		require.NoError(t, rows.Scan(&ev.data, &ev.audience))
		if aud.sees(&ev) {
			got = append(got, ev.data)
		}
	}
	require.NoError(t, rows.Err())
	return got
}

func TestAudienceSees(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		keys     []string
		audience []string
		want     bool
	}{
		{nil, nil, true},
		{nil, []string{"a"}, false},
		{[]string{}, []string{"a"}, false},
		{[]string{"a"}, nil, true},
		{[]string{"a"}, []string{"a"}, true},
		{[]string{"a"}, []string{"b", "c"}, false},
		{[]string{"b", "team:7"}, []string{"x", "team:7"}, true},
		{[]string{"ab"}, []string{"a", "b"}, false},
		{[]string{"a"}, []string{}, false},
		{[]string{"a", "b", "c", "d", "e", "f", "g", "h"}, []string{"z", "y", "x", "w", "v", "u", "h"}, true},
	} {
		t.Run(fmt.Sprintf("%q sees %q", tc.keys, tc.audience), func(t *testing.T) {
			t.Parallel()
			ev := event{audience: tc.audience}
			require.Equal(t, tc.want, newAudience(tc.keys).sees(&ev))
			ev.audMask = audienceMask(ev.audience) // as fanout sets it
			require.Equal(t, tc.want, newAudience(tc.keys).sees(&ev), "with the event's mask")
		})
	}
}

// TestAudienceMaskAgrees: for random key sets and audiences drawn from 100
// values, the event mask that fanout sets never changes what sees decides.
func TestAudienceMaskAgrees(t *testing.T) {
	t.Parallel()
	rnd := rand.New(rand.NewPCG(1, 2))
	values := func() []string {
		v := make([]string, rnd.IntN(6))
		for i := range v {
			v[i] = fmt.Sprint("user:", rnd.IntN(100))
		}
		return v
	}
	seen := 0
	for range 5000 {
		a := newAudience(values())
		ev := event{audience: values()}
		want := a.sees(&ev)
		ev.audMask = audienceMask(ev.audience)
		require.Equal(t, want, a.sees(&ev), "keys %q, audience %q", a.keys, ev.audience)
		if want {
			seen++
		}
	}
	require.Positive(t, seen, "some pairs see each other")
}

// TestAudienceDelivery: users A and B (B in team:7) and an anonymous
// connection on one stream; events for A, for B, for team:7 and for
// everyone, published concurrently. Each receives exactly what it may see,
// live, and when resuming from every id it received (id-only frames
// included).
func TestAudienceDelivery(t *testing.T) {
	t.Parallel()
	d, b := setup(t, func(c *Config) {
		c.PageSize = 7
		c.IDFrameDelay = time.Millisecond // id-only frames between the events
	})
	users := []struct {
		name string
		keys []string
	}{
		{"A", []string{"A"}},
		{"B", []string{"B", "team:7"}},
		{"anonymous", nil},
	}
	subs := make([]*fakeSub, len(users))
	for i, u := range users {
		subs[i] = subscribeAs(t, d, b, u.keys, nil, "s")
	}
	audiences := [][]string{{"A"}, {"B"}, {"team:7"}, nil, {"C", "A"}}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				aud := audiences[(w+i)%len(audiences)]
				_, err := b.pool.Exec(context.Background(), "SELECT streamer.publish('s', $1, audience => $2)",
					fmt.Sprintf("%d.%d for %q", w, i, aud), aud)
				if err != nil {
					t.Error(err)
				}
				d.Wake()
			}
		})
	}
	wg.Wait()
	b.publishTo(t, "s", "end", nil)
	d.Wake()

	for i, u := range users {
		t.Run(u.name, func(t *testing.T) {
			want := b.visibleOrder(t, "s", u.keys)
			got := subs[i].until(t, "end")
			require.Equal(t, want, dataOf(got), "live")

			// Resume from every id received: exactly what follows it.
			seen := 0
			for _, f := range got[:len(got)-1] { // nothing follows "end"
				pos, err := cursor.Parse(f.id)
				require.NoError(t, err)
				if f.hasData {
					seen++
				}
				r := subscribeAs(t, d, b, u.keys, &pos, "s")
				require.Equal(t, want[seen:], dataOf(r.until(t, "end")), "resuming from %s", f.id)
				d.Unsubscribe(r)
			}
		})
	}
}

// TestAudienceHiddenFlood publishes 10,000 events B may not see: B's
// Last-Event-ID moves past them with id-only frames, a reconnect from its
// last one reads one page, and an event for everyone after them reaches B
// with the same read that reaches A.
func TestAudienceHiddenFlood(t *testing.T) {
	t.Parallel()
	d, b := setup(t, func(c *Config) { c.IDFrameDelay = 20 * time.Millisecond })
	a := &fakeSub{frames: make(chan []byte, 1<<14), done: make(chan struct{})}
	_, err := d.Subscribe(context.Background(), a, []string{"s"}, nil, []string{"A"})
	require.NoError(t, err)
	waitLive(t, b, a)
	bb := subscribeAs(t, d, b, []string{"B"}, nil, "s")
	_, err = b.pool.Exec(context.Background(), `
		INSERT INTO streamer.events (stream, data, audience)
		SELECT 's', 'for A ' || g, '{A}' FROM generate_series(1, 10000) g`)
	require.NoError(t, err)
	readCaughtUp(t, d, b)

	require.Len(t, a.until(t, "for A 10000"), 10000)
	var lastA string
	require.NoError(t, b.pool.QueryRow(context.Background(), `
		SELECT c.seq || '.' || e.id FROM streamer.events e JOIN streamer.commits c USING (txid)
		ORDER BY c.seq DESC, e.id DESC LIMIT 1`).Scan(&lastA))
	// B's id-only frames (one per IDFrameDelay at most) end at the last
	// hidden event's position.
	var last frame
	for last.id != lastA {
		last = bb.nextFrame(t)
		require.False(t, last.hasData, "B sees nothing of A's: %q", last.data)
	}

	// Reconnect from it: one replay read, nothing delivered.
	pos, err := cursor.Parse(last.id)
	require.NoError(t, err)
	d.Unsubscribe(bb)
	r := subscribeAs(t, d, b, []string{"B"}, &pos, "s")
	require.Equal(t, pos, b.sig.ReplayRead.WaitOrTimeout(t))
	b.sig.ReplayRead.RequireEmpty(t)
	require.Empty(t, r.frames)

	// An event for everyone: both get it from the same live read.
	b.publishTo(t, "s", "everyone", nil)
	require.Equal(t, 1, readCaughtUp(t, d, b).Events)
	require.Equal(t, "everyone", r.next(t))
	require.Equal(t, "everyone", a.next(t))
}

// TestAudienceIDFrameNotPerRead: a read that leaves B behind a hidden
// event sends B nothing at the end of its loop turn (the id-only frame waits
// for IDFrameDelay), and a visible event read later reaches B with no
// id-only frame before it.
func TestAudienceIDFrameNotPerRead(t *testing.T) {
	t.Parallel()
	d, b := setup(t, func(c *Config) { c.IDFrameDelay = time.Hour })
	bb := subscribeAs(t, d, b, []string{"B"}, nil, "s")
	b.publishTo(t, "s", "for A", []string{"A"})
	readCaughtUp(t, d, b)
	readCaughtUp(t, d, b) // the first read's loop turn has ended
	require.Empty(t, bb.frames, "no id-only frame at the end of the read")

	b.publishTo(t, "s", "for B", []string{"B"})
	readCaughtUp(t, d, b)
	require.Equal(t, "for B", bb.next(t))
	readCaughtUp(t, d, b)
	require.Empty(t, bb.frames)
}

// TestAudienceIDFrameWhenIdle: once IDFrameDelay has passed, B idle behind a
// hidden event gets one id-only frame at that event's position; B behind
// hidden events followed by a visible one gets none.
func TestAudienceIDFrameWhenIdle(t *testing.T) {
	t.Parallel()
	d, b := setup(t, func(c *Config) { c.IDFrameDelay = 10 * time.Millisecond })
	bb := subscribeAs(t, d, b, []string{"B"}, nil, "s")

	// Hidden then visible in one transaction: one read considers both.
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	for _, aud := range [][]string{{"A"}, {"A"}, nil} {
		_, err = tx.Exec(ctx, "SELECT streamer.publish('s', $1, audience => $2)", fmt.Sprintf("for %q", aud), aud)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit(ctx))
	readCaughtUp(t, d, b)
	require.Zero(t, b.sig.IDFrames.WaitOrTimeout(t), "B's last event was visible")
	require.Equal(t, `for []`, bb.next(t))
	require.Empty(t, bb.frames)

	hidden := b.publishAs(t, "s", "for A again", []string{"A"})
	readCaughtUp(t, d, b)
	require.Equal(t, 1, b.sig.IDFrames.WaitOrTimeout(t))
	f := bb.nextFrame(t)
	require.False(t, f.hasData)
	require.Equal(t, hidden.String(), f.id)
	require.Empty(t, bb.frames, "one id-only frame")
}

// TestAudienceReplayHiddenTail resumes B before events it may not see:
// the replay ends with an id-only frame at the last of them, so a second
// reconnect starts past them.
func TestAudienceReplayHiddenTail(t *testing.T) {
	t.Parallel()
	d, b := setup(t, func(c *Config) { c.PageSize = 3 })
	b.publishTo(t, "s", "for B", []string{"B"})
	for i := range 5 {
		b.publishTo(t, "s", fmt.Sprint("for A ", i), []string{"A"})
	}
	r := subscribeAs(t, d, b, []string{"B"}, &cursor.Start, "s")
	require.Equal(t, "for B", r.next(t))
	var last frame
	for len(r.frames) > 0 {
		last = r.nextFrame(t)
		require.False(t, last.hasData)
	}
	require.Equal(t, "6.6", last.id, "the last hidden event's position")
}

// TestAudiencePageCache resumes A, B and an anonymous connection from the
// same place with the page cache on: each gets its own view of every page,
// never another audience's.
func TestAudiencePageCache(t *testing.T) {
	t.Parallel()
	d, b := setup(t, func(c *Config) { c.PageSize = 2 })
	for i := range 4 {
		b.publishTo(t, "s", fmt.Sprint("for A ", i), []string{"A"})
		b.publishTo(t, "s", fmt.Sprint("for B ", i), []string{"B"})
		b.publishTo(t, "s", fmt.Sprint("everyone ", i), nil)
	}
	b.publishTo(t, "s", "end", nil)
	for round := range 2 {
		for _, keys := range [][]string{{"A"}, {"B"}, nil} {
			r := subscribeAs(t, d, b, keys, &cursor.Start, "s")
			require.Equal(t, b.visibleOrder(t, "s", keys), dataOf(r.until(t, "end")), "round %d, keys %q", round, keys)
			d.Unsubscribe(r)
		}
	}
	// The second round came from the cache: the same pages, per audience.
	hits := 0
	for len(b.sig.PageCacheHit.WaitC()) > 0 {
		<-b.sig.PageCacheHit.WaitC()
		hits++
	}
	require.Positive(t, hits)
}

// TestAudienceReplayBufferFiltered holds a replay while live events arrive:
// the buffered ones are filtered like any other.
func TestAudienceReplayBufferFiltered(t *testing.T) {
	t.Parallel()
	d, b := setup(t, nil)
	b.publishTo(t, "s", "old for B", []string{"B"})
	b.publishTo(t, "s", "old for A", []string{"A"})
	release := lockCommits(t, b)
	s := newFakeSub()
	_, err := d.Subscribe(context.Background(), s, []string{"s"}, &cursor.Start, []string{"B"})
	require.NoError(t, err)
	blockedReader(t, b)
	release()
	b.publishTo(t, "s", "new for A", []string{"A"})
	d.Wake()
	b.publishTo(t, "s", "new for B", []string{"B"})
	d.Wake()
	b.publishTo(t, "s", "end", nil)
	d.Wake()
	require.Equal(t, []string{"old for B", "new for B", "end"}, dataOf(s.until(t, "end")))
}
