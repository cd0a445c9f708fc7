package main

import (
	"context"
	"os"
	"strconv"
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
// exactly once.
func TestSmoke(t *testing.T) {
	cfg := smokeConfig()
	cfg.DatabaseURL = pgtest.NewDB(t)
	cfg.Scenarios = []string{"fanout", "streams", "replay"}
	cfg.Targets = []string{"streamer", "baseline"}
	cfg.Timeout = time.Minute
	cfg.ConnsPerWorker = 25
	cfg.Settle = 100 * time.Millisecond
	cfg.FanoutConns, cfg.FanoutRate, cfg.Measure = 50, 20, 1500*time.Millisecond
	cfg.Streams, cfg.StreamsRate = 20, 40
	cfg.ReplayClients, cfg.ReplayBehind, cfg.ReplayLive, cfg.ReplayQuiet = 10, 200, 5, 500*time.Millisecond

	machine, results, err := runBench(context.Background(), cfg, testWriter{t})
	require.NoError(t, err)
	require.Len(t, results, 5)

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
			assert.Zero(t, r.PublishErrors, "publish errors")
			assert.Positive(t, r.Published)
			assert.Positive(t, r.P99Ms)
			assert.Positive(t, r.RSSKiB)
			if r.Scenario == "fanout" {
				assert.Equal(t, r.Published*int64(r.Conns), r.Deliveries, "deliveries")
			}
			if r.Replay != nil {
				assert.True(t, r.Replay.AllCaughtUp, "replay clients caught up")
				assert.Positive(t, r.Replay.MaxPGConns)
				assert.LessOrEqual(t, r.Replay.MaxPGConns, r.Replay.PoolSize, "read pool within STREAMER_DB_MAX_CONNS")
			}
		})
	}
}

func TestParser(t *testing.T) {
	var events []string
	p := &sseParser{chunked: true, onEvent: func(id, typ, data []byte) {
		events = append(events, string(id)+"|"+string(typ)+"|"+string(data))
	}}
	body := ": hi\nretry: 2000\n\nid: 1.1\ndata: a\n\nid: 2.2\r\nevent: e\rdata: b\ndata: c\n\n: ping\n"
	var chunked strings.Builder
	// Chunks of awkward sizes, so that lines and CRLFs straddle reads.
	for i := 0; i < len(body); i += 7 {
		part := body[i:min(i+7, len(body))]
		chunked.WriteString(strings.ToUpper(strconv.FormatInt(int64(len(part)), 16)) + ";ext=1\r\n" + part + "\r\n")
	}
	chunked.WriteString("0\r\n\r\n")
	wire := chunked.String()
	var err error
	for i := 0; i < len(wire) && err == nil; i += 3 {
		err = p.feed([]byte(wire[i:min(i+3, len(wire))]))
	}
	require.ErrorIs(t, err, errEndOfBody)
	require.Equal(t, []string{"1.1||a", "2.2|e|b\nc"}, events)
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	var l latencies
	l.add(h.Snapshot())
	for _, q := range []float64{0.5, 0.99} {
		want := time.Duration(q*1000) * time.Microsecond
		got := l.quantile(q)
		assert.InDelta(t, float64(want), float64(got), float64(want)/50, "quantile %v", q)
	}
	assert.Equal(t, time.Millisecond, l.quantile(1))
	for v := uint64(0); v < 1<<20; v += 997 {
		i := bucketOf(v)
		assert.LessOrEqual(t, v, uint64(bucketUpper(i)))
		if i > 0 {
			assert.Greater(t, v, uint64(bucketUpper(i-1)))
		}
	}
}
