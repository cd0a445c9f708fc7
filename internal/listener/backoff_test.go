package listener

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoff(t *testing.T) {
	t.Parallel()

	t.Run("DoublesWithinJitterAndCaps", func(t *testing.T) {
		t.Parallel()

		const minB, maxB = 100 * time.Millisecond, 10 * time.Second
		step := minB
		for attempt := range 40 {
			for range 50 {
				d := backoff(attempt, minB, maxB)
				require.GreaterOrEqual(t, d, step/2, "attempt %d", attempt)
				require.LessOrEqual(t, d, step, "attempt %d", attempt)
			}
			step = min(step*2, maxB)
		}
	})

	t.Run("HugeAttemptDoesNotOverflow", func(t *testing.T) {
		t.Parallel()

		d := backoff(1_000_000, time.Millisecond, time.Hour)
		require.GreaterOrEqual(t, d, 30*time.Minute)
		require.LessOrEqual(t, d, time.Hour)
	})

	t.Run("IsJittered", func(t *testing.T) {
		t.Parallel()

		seen := map[time.Duration]bool{}
		for range 100 {
			seen[backoff(3, 100*time.Millisecond, 10*time.Second)] = true
		}
		require.Greater(t, len(seen), 1)
	})

	t.Run("MinEqualsMax", func(t *testing.T) {
		t.Parallel()

		for attempt := range 5 {
			d := backoff(attempt, time.Second, time.Second)
			require.GreaterOrEqual(t, d, 500*time.Millisecond)
			require.LessOrEqual(t, d, time.Second)
		}
	})
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()

	t.Run("ZeroFieldsTakeDefaults", func(t *testing.T) {
		t.Parallel()

		cfg := New(Config{}).cfg
		require.Equal(t, DefaultChannel, cfg.Channel)
		require.Equal(t, DefaultPingInterval, cfg.PingInterval)
		require.Equal(t, DefaultMinBackoff, cfg.MinBackoff)
		require.Equal(t, DefaultMaxBackoff, cfg.MaxBackoff)
	})

	t.Run("SetFieldsAreKept", func(t *testing.T) {
		t.Parallel()

		cfg := New(Config{Channel: "c", PingInterval: time.Second, MinBackoff: time.Millisecond, MaxBackoff: time.Minute}).cfg
		require.Equal(t, "c", cfg.Channel)
		require.Equal(t, time.Second, cfg.PingInterval)
		require.Equal(t, time.Millisecond, cfg.MinBackoff)
		require.Equal(t, time.Minute, cfg.MaxBackoff)
	})

	t.Run("MaxBelowMinIsRaised", func(t *testing.T) {
		t.Parallel()

		cfg := New(Config{MinBackoff: time.Minute, MaxBackoff: time.Second}).cfg
		require.Equal(t, time.Minute, cfg.MaxBackoff)
	})
}
