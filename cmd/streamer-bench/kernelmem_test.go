package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
)

// TestSmokeKernelAndBurst runs the scenarios of issue #15 with tiny
// numbers, so that they never rot: idle-burst measures RSS after the
// burst; slow and slow-uncapped measure the server's sockets (ss -m) with
// and without the send-buffer cap, and see every stalled client cut.
func TestSmokeKernelAndBurst(t *testing.T) {
	cfg := smokeConfig()
	cfg.DatabaseURL = pgtest.NewDB(t)
	cfg.Scenarios = []string{"idle-burst", "slow", "slow-uncapped"}
	cfg.Targets = []string{"streamer"}
	cfg.Timeout = 3 * time.Minute
	cfg.Settle = 200 * time.Millisecond
	cfg.BurstConns, cfg.SlowConns, cfg.IdleHold = 30, 10, burstMeasureAfter

	machine, results, err := runBench(context.Background(), cfg, testWriter{t})
	require.NoError(t, err)
	require.Len(t, results, 3)
	var table strings.Builder
	printTable(&table, results)
	t.Log("\n" + machine + "\n" + table.String())

	for _, r := range results {
		require.Empty(t, r.Error, r.Scenario)
		assert.Equal(t, r.Conns, r.Held, "%s: connections held", r.Scenario)
		switch r.Scenario {
		case "idle-burst":
			require.NotNil(t, r.Burst)
			assert.Positive(t, r.Burst.After5sKiB)
		default:
			k := r.Kernel
			require.NotNil(t, k, r.Scenario)
			assert.Equal(t, cfg.SlowConns, k.StalledSockets, "%s: the stalled clients' sockets", r.Scenario)
			assert.Positive(t, k.StalledPerConnKiB, "%s: data queued in the kernel", r.Scenario)
			assert.Equal(t, cfg.SlowConns, k.Cut, "%s: every stalled client cut", r.Scenario)
			assert.Zero(t, k.OrphanSockets, "%s: a cut slow consumer is reset, not left draining", r.Scenario)
			if r.Scenario == "slow" {
				assert.InDelta(t, 64, k.SendBufKiB, 1, "the default cap: 32 KiB, doubled by the kernel")
			} else {
				assert.Greater(t, k.SendBufKiB, 64.0, "autotuned")
			}
		}
	}
}
