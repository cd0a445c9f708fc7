package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/sequencer"
)

// TestTickIntervalRefused: an interval that is not a duration, or outside
// 1ms-1s, is refused before anything connects, naming the variable.
func TestTickIntervalRefused(t *testing.T) {
	requireServeRefuses(t, "STREAMER_TICK_INTERVAL", "abc", "0", "-5ms", "999us", "1001ms")
	err := serveCommand(context.Background(), []string{"--tick-interval", "2s"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "STREAMER_TICK_INTERVAL=2s")

	require.NoError(t, os.Unsetenv("STREAMER_TICK_INTERVAL")) // t.Setenv restores it
	var cfg serveConfig
	require.NoError(t, cfg.bind(&bytes.Buffer{}).parse(nil, ""))
	require.Equal(t, sequencer.DefaultInterval, cfg.TickInterval, "the documented default")
	require.Equal(t, 5*time.Millisecond, cfg.TickInterval)
	for _, d := range []time.Duration{time.Millisecond, time.Second} {
		require.NoError(t, checkTickInterval(d), "the bounds are allowed")
	}
}

// TestTickIntervalApplied: the sequencer gets STREAMER_TICK_INTERVAL as its
// Interval.
func TestTickIntervalApplied(t *testing.T) {
	t.Parallel()
	got := make(chan time.Duration, 1)
	startServeOn(t, pgtest.NewDB(t), func(c *serveConfig) {
		c.tuneSequencer = func(sc *sequencer.Config) { got <- sc.Interval }
	}, "--tick-interval", "7ms")
	require.Equal(t, 7*time.Millisecond, <-got)
}

// requireServeRefuses requires serve to refuse each value of the
// environment variable env before anything connects (the database URL
// leads nowhere), with an error naming env. It sets env with t.Setenv, so
// the test cannot be parallel.
func requireServeRefuses(t *testing.T, env string, values ...string) {
	t.Helper()
	t.Setenv("DATABASE_URL", "postgres://127.0.0.1:1/none")
	for _, v := range values {
		t.Setenv(env, v)
		err := serveCommand(context.Background(), nil, io.Discard, io.Discard)
		require.ErrorContains(t, err, env, "value %q", v)
	}
}
