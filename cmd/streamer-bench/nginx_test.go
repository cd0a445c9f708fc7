package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/metrics"
	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/testenv"
	"github.com/streamer-dev/streamer/migrations"
)

// TestSmokeNginx runs the nginx scenario with tiny numbers: the direct leg
// on one instance, then two instances behind a real nginx running
// docs/nginx.conf. Both legs deliver every event exactly once, nginx
// spreads the connections over both instances, and the table sets the
// legs side by side.
func TestSmokeNginx(t *testing.T) {
	cfg := nginxSmokeConfig(t, "nginx")
	cfg.Targets = []string{"streamer", "baseline"} // nginx runs on streamer only
	cfg.FastConns, cfg.FastRate, cfg.Measure = 40, 20, 1500*time.Millisecond

	machine, results, err := runBench(context.Background(), cfg, testWriter{t})
	require.NoError(t, err)
	require.Len(t, results, 1)
	var table strings.Builder
	printTable(&table, results)
	t.Log("\n" + machine + "\n" + table.String())

	r := results[0]
	require.Empty(t, r.Error)
	require.NotNil(t, r.Proxy)
	for name, leg := range map[string]*result{"via nginx": &r, "direct": &r.Proxy.Direct} {
		assert.True(t, leg.ok(), "%s: every connection got every event: %+v", name, leg)
		assert.Equal(t, leg.Published*int64(leg.Conns), leg.Deliveries, "%s: deliveries", name)
		assert.Positive(t, leg.P99Ms, name)
	}
	require.Equal(t, 2, r.Proxy.Instances)
	requireSpread(t, r)
	assert.Contains(t, table.String(), "| via nginx | 2 (conns ")
	assert.Contains(t, table.String(), "| **via nginx / direct** |")
}

// TestSmokeStreamsNginx runs the streams-nginx scenario with tiny numbers:
// many streams, one subscriber each, on two instances behind a real nginx.
// Every event reaches its subscriber once, nginx spreads the connections
// over both instances, and in the ticks mode the window counts both
// instances' tick notifications.
func TestSmokeStreamsNginx(t *testing.T) {
	cfg := nginxSmokeConfig(t, "streams-nginx")
	cfg.Targets = []string{"streamer"}
	cfg.Streams, cfg.StreamsRate, cfg.Measure = 40, 100, 1500*time.Millisecond

	_, results, err := runBench(context.Background(), cfg, testWriter{t})
	require.NoError(t, err)
	require.Len(t, results, 1)
	r := results[0]
	require.Empty(t, r.Error)
	assert.True(t, r.ok(), "every connection got every event: %+v", r)
	require.NotNil(t, r.Proxy)
	requireSpread(t, r)
	if pgtest.Ordering() == migrations.Ticks {
		assert.Positive(t, r.TickNotes[metrics.NoteApplied], "tick notes: %v", r.TickNotes)
	}
}

// nginxSmokeConfig is the smoke configuration of a scenario behind nginx,
// on a database of its own; without nginx the test is skipped (or fails
// where it must run).
func nginxSmokeConfig(t *testing.T, scenario string) config {
	t.Helper()
	if _, err := nginxPath(); err != nil {
		testenv.Unavailable(t, "no nginx (make deps, or set STREAMER_NGINX): %v", err)
	}
	cfg := smokeConfig()
	cfg.DatabaseURL = pgtest.NewDB(t)
	cfg.Scenarios = []string{scenario}
	cfg.Timeout = time.Minute
	cfg.ConnsPerWorker = 25
	cfg.Settle = 100 * time.Millisecond
	return cfg
}

// requireSpread: nginx put every connection on one of two instances, and
// some on each.
func requireSpread(t *testing.T, r result) {
	t.Helper()
	require.Len(t, r.Proxy.InstanceConns, 2)
	assert.Equal(t, r.Conns, r.Proxy.InstanceConns[0]+r.Proxy.InstanceConns[1], "every connection on an instance")
	for i, n := range r.Proxy.InstanceConns {
		assert.Positive(t, n, "nginx sent no connection to instance %d", i+1)
	}
}
