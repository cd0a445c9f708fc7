package listener

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

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
