package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
)

func TestMain(m *testing.M) {
	// The tool starts its client workers and the baseline server by running
	// its own executable, which under go test is this test binary.
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	pgtest.Main(m)
}

// testWriter sends the tool's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestSmoke runs the tool end to end with tiny numbers, so that it never
// rots: both servers as separate processes, clients in two worker
// processes, PostgreSQL from pgtest. Every subscriber must get every event
// it may see exactly once, and none it may not (fanout-auth).
func TestSmoke(t *testing.T) {
	cfg := smokeConfig()
	cfg.DatabaseURL = pgtest.NewDB(t)
	cfg.Scenarios = []string{"fanout", "fanout-auth", "streams", "replay", "capacity"}
	cfg.Targets = []string{"streamer", "baseline"}
	cfg.Timeout = 2 * time.Minute
	cfg.ConnsPerWorker = 25
	cfg.Settle = 100 * time.Millisecond
	cfg.FanoutConns, cfg.FanoutRate, cfg.Measure = 50, 20, 1500*time.Millisecond
	cfg.Streams, cfg.StreamsRate = 20, 40
	cfg.ReplayClients, cfg.ReplayBehind, cfg.ReplayLive, cfg.ReplayQuiet = 10, 200, 5, 500*time.Millisecond

	// The capacity search's verdicts are unit-tested (TestLadder); here
	// its limit is far, so that every step passes on a busy machine.
	cfg.Capacity.P99 = 20 * time.Second
	cfg.Capacity.Streams, cfg.Capacity.Step = 10, 300*time.Millisecond

	machine, results, err := runBench(context.Background(), cfg, testWriter{t})
	require.NoError(t, err)
	require.Len(t, results, 8)

	var table strings.Builder
	printTable(&table, results)
	t.Log("\n" + machine + "\n" + table.String())

	for _, r := range results {
		t.Run(r.Scenario+"/"+r.Target, func(t *testing.T) {
			require.Empty(t, r.Error)
			assert.True(t, r.Complete, "every connection got every event")
			assert.Equal(t, r.Conns, r.Held, "connections held")
			assert.Zero(t, r.Failed, "failed connections")
			assert.Zero(t, r.Dropped, "dropped connections")
			assert.Zero(t, r.Missing, "missing events")
			assert.Zero(t, r.Duplicates, "duplicate events")
			assert.Zero(t, r.Reordered, "events out of order")
			assert.Zero(t, r.Unexpected, "unexpected events")
			assert.Zero(t, r.Leaked, "events a client may not see")
			assert.Zero(t, r.PublishErrors, "publish errors")
			assert.Positive(t, r.Published)
			assert.Positive(t, r.P99Ms)
			assert.Positive(t, r.RSSKiB)
			if r.Scenario == "fanout" {
				assert.Equal(t, r.Published*int64(r.Conns), r.Deliveries, "deliveries")
			}
			if r.Target == "streamer" && (r.Scenario == "fanout" || r.Scenario == "fanout-auth") {
				assert.GreaterOrEqual(t, r.ServerWrites, r.Deliveries/int64(r.Conns), "the server's write calls are counted")
			}
			if r.Scenario == "fanout-auth" {
				// Every second event (odd index) is for the clients of odd
				// index only: half of them.
				restricted, public := r.Published/2, r.Published-r.Published/2
				assert.Positive(t, restricted)
				assert.Equal(t, public*int64(r.Conns)+restricted*int64(r.Conns/2), r.Deliveries, "deliveries: each client's visible events")
			}
			if f := r.Capacity; f != nil {
				require.Len(t, f.Steps, 3, "three rungs, each passing")
				for i, st := range f.Steps {
					assert.True(t, st.Pass, "step %d: %s", i, st.Why)
					assert.Equal(t, []float64{40, 80, 160}[i], st.Rate)
					assert.Positive(t, st.Deliveries)
					assert.NotEmpty(t, st.WindowP99Ms)
				}
				assert.Equal(t, 160.0, f.Capacity)
				assert.False(t, f.Ceiling, "no rate failed")
				assert.Positive(t, r.CPUPerDeliveryUs, "the figures of the step at the capacity")
			}
			if r.Replay != nil {
				assert.True(t, r.Replay.AllCaughtUp, "replay clients caught up")
				assert.Positive(t, r.Replay.MaxPGConns)
				assert.LessOrEqual(t, r.Replay.MaxPGConns, r.Replay.PoolSize, "read pool within STREAMER_DB_MAX_CONNS")
			}
		})
	}
}
