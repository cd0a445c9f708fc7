package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/migrations"
)

// TestReplayRace connects 50 clients with assorted resume points while
// publishers insert continuously: each must see exactly the suffix of the one
// order after its resume point.
func TestReplayRace(t *testing.T) {
	t.Parallel()
	t.Run("default buffers", func(t *testing.T) {
		t.Parallel()
		testReplayRace(t, setup(t))
	})
	// A one-event in-flight buffer overflows during nearly every replay, so
	// connects take the extra-round path.
	t.Run("tiny buffers", func(t *testing.T) {
		t.Parallel()
		s := setup(t, func(o *stackOpts) { o.dispatch.MaxBuffered = 1 })
		s.dsig.ReplayRound.Init()
		testReplayRace(t, s)
		select {
		case <-s.dsig.ReplayRound.WaitC():
		default:
			t.Fatal("no replay needed a second round: the test did not exercise the overflow path")
		}
	})
}

func testReplayRace(t *testing.T, s *stack) {
	ctx := context.Background()

	// The recorder follows the stream from the beginning: its sequence is
	// the order every other client must agree with.
	recorder := subscribeQuery(t, s.url, map[string][]string{"stream": {"race"}, "last_event_id": {"0"}}, "")

	var stop atomic.Bool
	var published atomic.Int64
	var g errgroup.Group
	for p := range 3 {
		g.Go(func() error {
			for i := 0; !stop.Load(); i++ {
				if _, err := s.pool.Exec(ctx, "SELECT streamer.publish('race', $1)", fmt.Sprintf("p%d-%d", p, i)); err != nil {
					return err
				}
				published.Add(1)
			}
			return nil
		})
	}

	var order []received
	for len(order) < 20 {
		order = append(order, recorder.next())
	}
	clients := make([]*client, 50)
	starts := make([]int, 50) // index in order after which the client starts
	for i := range clients {
		for len(order) < 20+i*4 {
			order = append(order, recorder.next())
		}
		starts[i] = rand.IntN(len(order))
		clients[i] = subscribe(t, s.url, []string{"race"}, order[starts[i]].ID)
	}
	stop.Store(true)
	require.NoError(t, g.Wait())
	total := int(published.Load())
	for len(order) < total {
		order = append(order, recorder.next())
	}
	requireOrdered(t, order)

	for i, c := range clients {
		want := order[starts[i]+1:]
		got := c.take(len(want))
		require.Equal(t, want, got, "client %d from %s", i, order[starts[i]].ID)
	}
}

// TestOutOfOrderCommitsRandomised runs 8 publishers that hold transactions
// open for random times and roll some back, while subscribers reconnect at
// random with their last id.
func TestOutOfOrderCommitsRandomised(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	streams := []string{"s0", "s1", "s2", "s3"}

	type sub struct {
		streams []string
		got     []received
	}
	subs := make([]*sub, 6)
	for i := range subs {
		a, b := rand.IntN(4), rand.IntN(4)
		subs[i] = &sub{streams: slices.Compact(slices.Sorted(slices.Values([]string{streams[a], streams[b]})))}
	}

	// committed[stream] lists the data committed on it; commits records each
	// publisher's transactions in the order they committed.
	var mu sync.Mutex
	committed := map[string][]string{}
	commits := make([][]string, 8) // per publisher: the data of each commit's events

	var pubs errgroup.Group
	for p := range 8 {
		pubs.Go(func() error {
			rng := rand.New(rand.NewPCG(uint64(p), 7))
			for tx := range 25 {
				t, err := s.pool.Begin(ctx)
				if err != nil {
					return err
				}
				rollback := rng.IntN(5) == 0
				var evs []string
				var evStreams []string
				for e := range 1 + rng.IntN(3) {
					stream := streams[rng.IntN(len(streams))]
					data := fmt.Sprintf("p%d-t%d-e%d", p, tx, e)
					if rollback {
						data = "rolledback-" + data
					}
					if _, err := t.Exec(ctx, "SELECT streamer.publish($1, $2)", stream, data); err != nil {
						return err
					}
					evs, evStreams = append(evs, data), append(evStreams, stream)
				}
				time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond) // hold the transaction open
				if rollback {
					if err := t.Rollback(ctx); err != nil {
						return err
					}
					continue
				}
				mu.Lock() // held across COMMIT so committed lists follow commit order
				err = t.Commit(ctx)
				if err == nil {
					for i, d := range evs {
						committed[evStreams[i]] = append(committed[evStreams[i]], d)
					}
					commits[p] = append(commits[p], evs...)
				}
				mu.Unlock()
				if err != nil {
					return err
				}
			}
			return nil
		})
	}

	var subsG errgroup.Group
	for i, sb := range subs {
		subsG.Go(func() error {
			rng := rand.New(rand.NewPCG(uint64(i), 9))
			last := "0" // the database is fresh: from the beginning
			ends := map[string]bool{}
			for {
				c := subscribe(t, s.url, sb.streams, last)
				n := 1 + rng.IntN(30)
				for range n {
					ev := c.next()
					last = ev.ID
					if strings.HasPrefix(ev.Data, "end-") {
						ends[ev.Data] = true
						if len(ends) == len(sb.streams) {
							c.close()
							return nil
						}
						continue
					}
					sb.got = append(sb.got, ev)
				}
				c.close()
			}
		})
	}
	require.NoError(t, pubs.Wait())
	for _, st := range streams {
		s.publish(t, st, "end-"+st)
	}
	require.NoError(t, subsG.Wait())

	// One order per stream: the position of each event, across subscribers.
	order := map[string][]string{}
	for _, sb := range subs {
		requireOrdered(t, sb.got)
		perStream := map[string][]string{}
		for _, ev := range sb.got {
			require.NotContains(t, ev.Data, "rolledback", "event of a rolled-back transaction delivered")
			stream := streamOf(committed, ev.Data)
			require.NotEmpty(t, stream, "unknown event %q", ev.Data)
			perStream[stream] = append(perStream[stream], ev.Data)
		}
		for _, st := range sb.streams {
			got := perStream[st]
			require.ElementsMatch(t, committed[st], got, "stream %s: received must equal committed, exactly once", st)
			if prev, ok := order[st]; ok {
				require.Equal(t, prev, got, "stream %s: every subscriber sees the same order", st)
			}
			order[st] = got
			// Commit order: with the recording lock held across COMMIT,
			// committed[st] is commit order. Ticks order by tick, then
			// by xid within a tick: only the contract's order (checked
			// below per publisher) holds.
			if pgtest.Ordering() == migrations.Trigger {
				require.Equal(t, committed[st], got, "stream %s: delivered in commit order", st)
			}
		}
	}
	// The test is not vacuous: somewhere a lower id was delivered after a
	// higher one, because its transaction committed later.
	inverted := false
	for _, sb := range subs {
		for i := 1; i < len(sb.got); i++ {
			a, _ := cursor.Parse(sb.got[i-1].ID)
			b, _ := cursor.Parse(sb.got[i].ID)
			inverted = inverted || b.ID < a.ID
		}
	}
	require.True(t, inverted, "no out-of-order commit happened")

	// One publisher's sequential transactions arrive in their commit order.
	for _, sb := range subs {
		for p, evs := range commits {
			var want []string
			for _, d := range evs {
				if slices.Contains(sb.streams, streamOf(committed, d)) {
					want = append(want, d)
				}
			}
			var got []string
			for _, ev := range sb.got {
				if strings.HasPrefix(ev.Data, fmt.Sprintf("p%d-", p)) {
					got = append(got, ev.Data)
				}
			}
			require.Equal(t, want, got, "publisher %d", p)
		}
	}
}

func streamOf(committed map[string][]string, data string) string {
	for st, ds := range committed {
		if slices.Contains(ds, data) {
			return st
		}
	}
	return ""
}

// TestReplaySharesPages resumes several clients from the same token: the
// later ones take the full pages from the replay page cache, and every
// client still gets exactly the same events.
func TestReplaySharesPages(t *testing.T) {
	t.Parallel()
	s := setup(t, func(o *stackOpts) { o.dispatch.PageSize = 10 })
	s.dsig.PageCacheHit.Init()
	for i := range 45 {
		s.publish(t, "shared", fmt.Sprint(i))
	}
	s.sequence(t) // the 45 are history, in full pages, before anyone replays
	var first []received
	for c := range 4 {
		got := subscribe(t, s.url, []string{"shared"}, "0").take(45)
		requireOrdered(t, got)
		if c == 0 {
			first = got
			continue
		}
		require.Equal(t, first, got)
		for range 4 { // pages 1-4 are full; the fifth reaches the head and is read again
			s.dsig.PageCacheHit.WaitOrTimeout(t)
		}
	}
}

// TestReplayRate resumes clients under a replay rate: each still gets its
// backlog and then the live events, once each and in order, and the replays
// together took at least as long as the token bucket allows (a lower bound
// only, which a slow machine cannot break).
func TestReplayRate(t *testing.T) {
	t.Parallel()
	const (
		pageSize = 20
		rate     = 1000 // events/s for all replays together
		clients  = 3
		backlog  = 100
	)
	s := setup(t, func(o *stackOpts) {
		o.dispatch.PageSize = pageSize
		o.dispatch.ReplayRate = rate
		o.dispatch.PageCacheBytes = -1 // every page is read and paced on its own
	})
	ctx := context.Background()
	_, err := s.pool.Exec(ctx, "INSERT INTO streamer.events (stream, data) SELECT 'paced', g::text FROM generate_series(1, $1) g", backlog)
	require.NoError(t, err)
	s.sequence(t) // the backlog is history before anyone subscribes

	start := time.Now()
	subs := make([]*client, clients)
	for i := range subs {
		subs[i] = subscribe(t, s.url, []string{"paced"}, "0")
	}
	s.waitLive(t, clients)
	elapsed := time.Since(start)
	// The bucket starts full (one page) and refills at rate.
	minimum := time.Duration(float64(clients*backlog-pageSize) / rate * float64(time.Second))
	require.GreaterOrEqual(t, elapsed, minimum)

	s.publish(t, "paced", "live")
	for _, c := range subs {
		got := c.take(backlog + 1)
		requireOrdered(t, got)
		for i, ev := range got[:backlog] {
			require.Equal(t, strconv.Itoa(i+1), ev.Data)
		}
		require.Equal(t, "live", got[backlog].Data)
	}
}
