package main

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/sequencer"
	"github.com/streamer-dev/streamer/internal/testsignal"
	"github.com/streamer-dev/streamer/migrations"
)

// dbIn returns a new test database in mode, whatever
// STREAMER_TEST_ORDERING says.
func dbIn(t testing.TB, mode migrations.Ordering) string {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDB(t)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.NoError(t, migrations.SetOrdering(ctx, conn, mode))
	return url
}

// TestPublishPokesSequencer: in ticks mode, a POST /publish that commits
// while the sequencer is backed off (its idle wait set to an hour here)
// is numbered by a tick the poke brings, not by the wait; the event
// arrives, and /metrics shows the sequencer's series.
func TestPublishPokesSequencer(t *testing.T) {
	t.Parallel()
	const interval = 50 * time.Millisecond
	sig := &sequencer.TestSignals{}
	sig.Init()
	base := startServeOn(t, dbIn(t, migrations.Ticks), func(c *serveConfig) {
		c.tuneSequencer = func(sc *sequencer.Config) {
			sc.Interval, sc.IdleInterval, sc.Linger = interval, time.Hour, time.Nanosecond
			sc.TestSignals = sig
		}
	}, "--allow-anonymous-publish", "--shutdown-timeout", "2s")
	events := subscribeSSE(t, base, "poke", "")

	// Backed off: the next tick would come 800 ms or more later.
	for sig.Waited.WaitOrTimeout(t).Wait < 16*interval {
	}
	postEvents(t, base, "poke", 0, 1)
	for {
		tk := sig.Waited.WaitOrTimeout(t)
		if tk.Numbered > 0 {
			require.True(t, tk.Poked, "the publish's tick came from the wait, not from a poke")
			require.Equal(t, 1, tk.Numbered)
			break
		}
	}
	require.Equal(t, "0", nextEvent(t, events).data)

	m := scrapeMetrics(t, base)
	require.Equal(t, float64(1), m.value("streamer_sequencer_leading"))
	require.Equal(t, float64(1), m.value("streamer_sequencer_takeovers_total"))
	require.Equal(t, float64(1), m.value("streamer_sequencer_ticks_total", "result", "numbered"))
	require.Equal(t, float64(1), m.value("streamer_sequencer_commits_total"))
	require.GreaterOrEqual(t, m.value("streamer_sequencer_ticks_total", "result", "empty"), float64(4), "the empty ticks while backing off")
	require.Zero(t, m.value("streamer_sequencer_errors_total"))
	// A duration per tick (one scrape may fall between a tick's count and
	// its observation: ticks are 50 ms or more apart now, so ask again).
	require.Eventually(t, func() bool {
		m := scrapeMetrics(t, base)
		count, sum := m.histogram("streamer_sequencer_tick_duration_seconds")
		return sum > 0 && count == m.value("streamer_sequencer_ticks_total", "result", "numbered")+
			m.value("streamer_sequencer_ticks_total", "result", "empty")
	}, testsignal.Timeout, 10*time.Millisecond, "tick durations do not match the ticks")
}

// TestServeFollowsModeSwitch: a server started on a trigger-mode database
// keeps delivering while `streamer migrate` switches the database to
// ticks and back: its sequencer asks for the mode every ModeInterval (50
// ms here) and numbers commits once it finds ticks.
func TestServeFollowsModeSwitch(t *testing.T) {
	t.Parallel()
	dbURL := dbIn(t, migrations.Trigger)
	base := startServeOn(t, dbURL, func(c *serveConfig) {
		c.tuneSequencer = func(sc *sequencer.Config) { sc.ModeInterval = 50 * time.Millisecond }
	}, "--allow-anonymous-publish", "--shutdown-timeout", "2s")
	events := subscribeSSE(t, base, "switch", "")
	numbered := func() float64 {
		return scrapeMetrics(t, base).value("streamer_sequencer_commits_total")
	}

	for i, mode := range []migrations.Ordering{migrations.Trigger, migrations.Ticks, migrations.Trigger} {
		var out bytes.Buffer
		require.Equal(t, 0, run([]string{"migrate", "--database-url", dbURL, "--ordering", string(mode)}, &out, &out), out.String())
		require.Contains(t, out.String(), "ordering: "+string(mode))
		before := numbered()
		postEvents(t, base, "switch", i, 1)
		require.Equal(t, fmt.Sprint(i), nextEvent(t, events).data, "in %s mode", mode)
		if mode == migrations.Ticks {
			// Counted just after the tick's COMMIT, which the delivery follows.
			require.Eventually(t, func() bool { return numbered() > before }, testsignal.Timeout, 10*time.Millisecond,
				"no tick of this server numbered the event")
		} else {
			require.Equal(t, before, numbered(), "trigger mode numbers at COMMIT")
		}
	}
}
