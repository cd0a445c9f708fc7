package sequencer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/sequencer"
	"github.com/streamer-dev/streamer/migrations"
)

// startWith starts a sequencer on url with cfg's waits and metrics, and
// waits until it leads; pid is its backend's.
func startWith(t *testing.T, url string, cfg sequencer.Config) (s *sequencer.Sequencer, sig *sequencer.TestSignals, pid uint32) {
	t.Helper()
	s, sig = launch(t, url, cfg)
	return s, sig, sig.Leading.WaitOrTimeout(t)
}

// launch starts a sequencer on url with cfg's waits and metrics, short
// backoffs and signals, and stops it at the test's end.
func launch(t *testing.T, url string, cfg sequencer.Config) (*sequencer.Sequencer, *sequencer.TestSignals) {
	t.Helper()
	sig := &sequencer.TestSignals{}
	sig.Init()
	cfg.DatabaseURL, cfg.TestSignals = url, sig
	cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	s := sequencer.New(cfg)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(s.Stop)
	return s, sig
}

// waitBackedOff waits for a tick after which the sequencer waits at least
// d, and returns it.
func waitBackedOff(t *testing.T, sig *sequencer.TestSignals, d time.Duration) sequencer.Tick {
	t.Helper()
	for {
		if tk := sig.Waited.WaitOrTimeout(t); tk.Wait >= d {
			require.Zero(t, tk.Numbered)
			return tk
		}
	}
}

// TestPoke: a poke cuts a backed-off wait short, the tick it brings
// numbers what committed, and it comes Interval after the last tick ended,
// not sooner (the poke arrives right after a tick). Pokes coalesce: many
// leave none pending once the poked tick has run.
func TestPoke(t *testing.T) {
	t.Parallel()
	const interval = 100 * time.Millisecond
	url, pool := ticksDB(t)
	s, sig, _ := startWith(t, url, sequencer.Config{Interval: interval, IdleInterval: time.Hour, Linger: time.Nanosecond})

	last := waitBackedOff(t, sig, 8*interval)
	exec(t, pool, "INSERT INTO streamer.events (stream, data) VALUES ('s', 'x')")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				s.Poke()
			}
		})
	}
	wg.Wait()
	tk := sig.Waited.WaitOrTimeout(t)
	require.True(t, tk.Poked, "the tick came from the wait, not the poke")
	require.Equal(t, 1, tk.Numbered)
	gap := tk.Began.Sub(last.Began.Add(last.Took))
	require.GreaterOrEqual(t, gap, interval, "a poke made ticks closer than Interval")
	require.Less(t, gap, last.Wait)
	require.Zero(t, s.PendingPokes(), "pokes made before the tick are served by it")
}

// TestPokeIsInert: a poke does nothing to a sequencer that does not lead,
// nor to one that found trigger mode.
func TestPokeIsInert(t *testing.T) {
	t.Parallel()
	t.Run("not leading", func(t *testing.T) {
		t.Parallel()
		url, _ := ticksDB(t)
		_, _, _ = startWith(t, url, sequencer.Config{})
		sig := &sequencer.TestSignals{}
		sig.Init()
		b := sequencer.New(sequencer.Config{DatabaseURL: url, TestSignals: sig,
			Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
		require.NoError(t, b.Start(context.Background()))
		t.Cleanup(b.Stop)
		require.False(t, b.Leading())
		b.Poke()
		require.Zero(t, b.PendingPokes())
	})
	t.Run("trigger mode", func(t *testing.T) {
		t.Parallel()
		url := triggerDB(t)
		s, sig, _ := startWith(t, url, sequencer.Config{ModeInterval: time.Hour})
		require.Equal(t, time.Hour, sig.Waited.WaitOrTimeout(t).Wait, "trigger mode: ask again in ModeInterval")
		s.Poke()
		require.Zero(t, s.PendingPokes())
	})
	t.Run("nil", func(t *testing.T) {
		var s *sequencer.Sequencer
		require.NotPanics(t, s.Poke)
	})
}

// triggerDB returns a fresh database in trigger mode, whatever
// STREAMER_TEST_ORDERING says.
func triggerDB(t *testing.T) string {
	t.Helper()
	url := pgtest.NewDB(t)
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	require.NoError(t, migrations.SetOrdering(context.Background(), conn, migrations.Trigger))
	return url
}
