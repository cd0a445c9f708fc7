package backoff

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestBackoff(t *testing.T) {
	t.Parallel()

	t.Run("DoublesWithinJitterAndCaps", func(t *testing.T) {
		t.Parallel()

		const minB, maxB = 100 * time.Millisecond, 10 * time.Second
		step := minB
		for attempt := range 40 {
			for range 50 {
				d := Delay(attempt, minB, maxB)
				require.GreaterOrEqual(t, d, step/2, "attempt %d", attempt)
				require.LessOrEqual(t, d, step, "attempt %d", attempt)
			}
			step = min(step*2, maxB)
		}
	})

	t.Run("HugeAttemptDoesNotOverflow", func(t *testing.T) {
		t.Parallel()

		d := Delay(1_000_000, time.Millisecond, time.Hour)
		require.GreaterOrEqual(t, d, 30*time.Minute)
		require.LessOrEqual(t, d, time.Hour)
	})

	t.Run("IsJittered", func(t *testing.T) {
		t.Parallel()

		seen := map[time.Duration]bool{}
		for range 100 {
			seen[Delay(3, 100*time.Millisecond, 10*time.Second)] = true
		}
		require.Greater(t, len(seen), 1)
	})

	t.Run("MinEqualsMax", func(t *testing.T) {
		t.Parallel()

		for attempt := range 5 {
			d := Delay(attempt, time.Second, time.Second)
			require.GreaterOrEqual(t, d, 500*time.Millisecond)
			require.LessOrEqual(t, d, time.Second)
		}
	})
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSleep(t *testing.T) {
	t.Parallel()
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep without a cancelled context reported false")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep with a cancelled context reported true")
	}
}
