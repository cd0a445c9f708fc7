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
// transaction, 100-byte data), measures single-row publish throughput for a
// while, then starts the retention service and measures, until its first
// pass is done, its prune throughput and the publish throughput meanwhile,
// then publish throughput alone again (the baseline is the mean of both).
// It runs once whatever b.N. The fill is RETENTION_BENCH_EVENTS events
// (default 100,000, so that make bench stays short; the documented figures
// use 5,000,000) and the baseline lasts RETENTION_BENCH_BASELINE (default
// 5s). Run:
//
//	RETENTION_BENCH_EVENTS=5000000 RETENTION_BENCH_BASELINE=20s \
//	  go test -run '^$' -bench PruneWhilePublishing -benchtime 1x -timeout 1h ./internal/retention/
func BenchmarkPruneWhilePublishing(b *testing.B) {
	events := envInt(b, "RETENTION_BENCH_EVENTS", 100_000)
	baseline := envDuration(b, "RETENTION_BENCH_BASELINE", 5*time.Second)
	for _, rest := range []float64{0, 1} {
		b.Run("rest="+strconv.FormatFloat(rest, 'g', -1, 64), func(b *testing.B) {
			benchPruneWhilePublishing(b, events, baseline, rest)
		})
	}
}

func benchPruneWhilePublishing(b *testing.B, events int, baseline time.Duration, rest float64) {
	ctx := context.Background()
	pool := pgtest.NewPool(b)
	fillStart := time.Now()
	fillExpired(b, pool, events)
	b.Logf("filled %d events in %v", events, time.Since(fillStart).Round(time.Millisecond))

	const publishers = 8
	publishFor := func(stop <-chan struct{}) (int64, time.Duration) {
		var n atomic.Int64
		var wg sync.WaitGroup
		began := time.Now()
		for range publishers {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := pool.Exec(ctx, "SELECT streamer.publish('bench:live', $1)", payload100); err != nil {
						b.Errorf("publish: %v", err)
						return
					}
					n.Add(1)
				}
			})
		}
		wg.Wait()
		return n.Load(), time.Since(began)
	}

	idle := func() (int64, time.Duration) {
		stop := make(chan struct{})
		time.AfterFunc(baseline, func() { close(stop) })
		return publishFor(stop)
	}
	idleN, idleD := idle()

	// The service has a pool of its own, so that publishers keep theirs.
	svcPool, err := pgxpool.New(ctx, pool.Config().ConnString())
	require.NoError(b, err)
	defer svcPool.Close()
	signals := &TestSignals{}
	signals.Init()
	svc := New(Config{Pool: svcPool, Retention: time.Hour, TestSignals: signals, Rest: rest})
	stop := make(chan struct{})
	var (
		pass     Pass
		busyN    int64
		busyD    time.Duration
		pubDone  = make(chan struct{})
		pruneDur time.Duration
	)
	go func() {
		defer close(pubDone)
		busyN, busyD = publishFor(stop)
	}()
	began := time.Now()
	require.NoError(b, svc.Start(ctx))
	select {
	case pass = <-signals.PassDone.WaitC():
	case <-time.After(time.Hour):
		b.Fatal("the first pass did not end within an hour")
	}
	pruneDur = time.Since(began)
	close(stop)
	<-pubDone
	svc.Stop()
	require.NoError(b, pass.Err)
	require.Equal(b, int64(events), pass.Events)

	// The machine is shared: the baseline is the mean of a window before
	// and one after the pruning.
	afterN, afterD := idle()
	idleRate := float64(idleN+afterN) / (idleD + afterD).Seconds()
	busyRate := float64(busyN) / busyD.Seconds()
	b.ReportMetric(float64(pass.Events)/pruneDur.Seconds(), "pruned_events/s")
	b.ReportMetric(idleRate, "publish_tx/s_idle")
	b.ReportMetric(busyRate, "publish_tx/s_pruning")
	b.ReportMetric(100*busyRate/idleRate, "publish_%_of_idle")
	b.Logf("pruned %d events in %d steps in %v; publishing %.0f tx/s before, %.0f after (%v each), %.0f tx/s while pruning",
		pass.Events, pass.Steps, pruneDur.Round(time.Millisecond),
		float64(idleN)/idleD.Seconds(), float64(afterN)/afterD.Seconds(), baseline, busyRate)
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
