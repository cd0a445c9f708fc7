package retention

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
)

// BenchmarkPruneWhilePublishing fills the table with expired events (one per
// transaction, 100-byte data), then alternates windows of single-row
// publishing (8 goroutines) with the retention service running and windows
// with it stopped, until the service has pruned every expired event. It
// reports the prune throughput over the busy windows and the publish
// throughput in both kinds of window: alternating in short windows cancels
// the drift of a machine shared with other work. It runs once whatever b.N.
// The fill is RETENTION_BENCH_EVENTS events (default 100,000, so that make
// bench stays short; the documented figures use 5,000,000), the windows last
// RETENTION_BENCH_WINDOW (default 2s). Run:
//
//	RETENTION_BENCH_EVENTS=5000000 RETENTION_BENCH_WINDOW=10s \
//	  go test -run '^$' -bench PruneWhilePublishing -benchtime 1x -timeout 2h ./internal/retention/
func BenchmarkPruneWhilePublishing(b *testing.B) {
	events := envInt(b, "RETENTION_BENCH_EVENTS", 100_000)
	window := envDuration(b, "RETENTION_BENCH_WINDOW", 2*time.Second)
	for _, rest := range []float64{-1, 1} {
		b.Run("rest="+strconv.FormatFloat(max(rest, 0), 'g', -1, 64), func(b *testing.B) {
			benchPruneWhilePublishing(b, events, window, rest)
		})
	}
}

func benchPruneWhilePublishing(b *testing.B, events int, window time.Duration, rest float64) {
	ctx := context.Background()
	pool := pgtest.NewPool(b)
	fillStart := time.Now()
	fillExpired(b, pool, events)
	b.Logf("filled %d events in %v", events, time.Since(fillStart).Round(time.Millisecond))

	const publishers = 8
	publishFor := func(d time.Duration) int64 {
		var n atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(d)
		for range publishers {
			wg.Go(func() {
				for time.Now().Before(stop) {
					if _, err := pool.Exec(ctx, "SELECT streamer.publish('bench:live', $1)", payload100); err != nil {
						b.Errorf("publish: %v", err)
						return
					}
					n.Add(1)
				}
			})
		}
		wg.Wait()
		return n.Load()
	}

	// The service has a pool of its own, so that publishers keep theirs.
	svcPool, err := pgxpool.New(ctx, pool.Config().ConnString())
	require.NoError(b, err)
	defer svcPool.Close()
	svc := New(Config{Pool: svcPool, Retention: time.Hour, Rest: rest})

	var (
		idleTx, busyTx     int64
		idleTime, busyTime time.Duration
		windows            int
	)
	// Done when the database says so: a step whose COMMIT succeeded while
	// Stop cancelled the call is pruned but not counted by the service.
	pruned := func() int64 {
		var n int64
		require.NoError(b, pool.QueryRow(ctx, "SELECT events_total FROM streamer.pruned").Scan(&n))
		return n
	}
	for pruned() < int64(events) {
		require.Less(b, windows, 1000, "pruning did not finish")
		windows++
		idleTx += publishFor(window)
		idleTime += window

		began := time.Now()
		require.NoError(b, svc.Start(ctx))
		busyTx += publishFor(window)
		svc.Stop() // a step under way is rolled back
		busyTime += time.Since(began)
	}
	require.Equal(b, int64(events), pruned())

	idleRate := float64(idleTx) / idleTime.Seconds()
	busyRate := float64(busyTx) / busyTime.Seconds()
	// A lower bound: the last busy window ends after the pruning did.
	b.ReportMetric(float64(events)/busyTime.Seconds(), "pruned_events/s")
	b.ReportMetric(idleRate, "publish_tx/s_idle")
	b.ReportMetric(busyRate, "publish_tx/s_pruning")
	b.ReportMetric(100*busyRate/idleRate, "publish_%_of_idle")
	b.Logf("pruned %d events in %d windows of %v (%v pruning); publishing %.0f tx/s idle, %.0f tx/s while pruning",
		events, windows, window, busyTime.Round(time.Millisecond), idleRate, busyRate)
}

// payload100 is 100 bytes of data.
const payload100 = "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"

// fillExpired inserts n events, one per commit, committed two hours ago,
// the way TestReadPlan does (triggers off, numbered by hand), and moves
// the commit sequence past them.
func fillExpired(tb testing.TB, pool *pgxpool.Pool, n int) {
	tb.Helper()
	ctx := context.Background()
	// One simple-protocol batch: n is an integer and payload100 digits, so
	// formatting them in is safe.
	_, err := pool.Exec(ctx, fmt.Sprintf(`
		ALTER TABLE streamer.events DISABLE TRIGGER USER;
		INSERT INTO streamer.events (stream, data, txid)
			OVERRIDING SYSTEM VALUE
			SELECT 'bench:' || (g %% 1000), '%[2]s', (1000000000000 + g)::text::xid8 FROM generate_series(1, %[1]d) g;
		ALTER TABLE streamer.events ENABLE TRIGGER USER;
		INSERT INTO streamer.commits (seq, txid, committed_at)
			SELECT g, (1000000000000 + g)::text::xid8, now() - interval '2 hours' FROM generate_series(1, %[1]d) g;
		SELECT setval('streamer.commit_seq', %[1]d);
		SELECT setval(pg_get_serial_sequence('streamer.events', 'id'), %[1]d);
		ANALYZE streamer.events; ANALYZE streamer.commits`, n, payload100))
	require.NoError(tb, err)
}

func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	require.NoError(tb, err, name)
	return v
}

func envDuration(tb testing.TB, name string, def time.Duration) time.Duration {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := time.ParseDuration(s)
	require.NoError(tb, err, name)
	return v
}
