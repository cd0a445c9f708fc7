package defaults_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/defaults"
)

func TestPositive(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want time.Duration }{
		{0, time.Second},
		{-time.Millisecond, time.Second},
		{time.Millisecond, time.Millisecond},
	} {
		v := tc.in
		defaults.Positive(&v, time.Second)
		require.Equal(t, tc.want, v, "in %v", tc.in)
	}
	n := -1
	defaults.Positive(&n, 7)
	require.Equal(t, 7, n)
}

func TestZeroOrOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want float64 }{
		{0, 1.5},
		{-0.5, 0},
		{0.25, 0.25},
	} {
		v := tc.in
		defaults.ZeroOrOff(&v, 1.5)
		require.Equal(t, tc.want, v, "in %v", tc.in)
	}
}
