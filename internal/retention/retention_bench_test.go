package retention

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/dispatch"
	"github.com/streamer-dev/streamer/internal/listener"
	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/registry"
)

// BenchmarkPruneWhilePublishing fills the table with expired events (one per
// transaction, 100-byte data), then alternates windows of single-row
// publishing (8 goroutines) with the retention service running and windows
// with it stopped, until the service has pruned every expired event. It
// reports the prune throughput over the busy windows and the publish
// throughput in both kinds of window: alternating in short windows cancels
// the drift of a machine shared with other work. A live subscriber on the
// publishers' stream, served by an in-process dispatcher and listener (the
// server's path minus HTTP), measures each event's delivery latency, from
// just before its publish to its frame reaching the subscriber: p50 and p99
// per kind of window, by the window it was sent in. It runs once whatever b.N.
// The fill is RETENTION_BENCH_EVENTS events (default 100,000, so that make
// bench stays short; the documented figures use 5,000,000), the windows last
// RETENTION_BENCH_WINDOW (default 2s); RETENTION_BENCH_WINDOWS, when set,
// stops after that many pairs of windows instead of when everything is
// pruned (for a busy machine, where pruning 5,000,000 events at the default
// pace takes too long). Run:
//
//	RETENTION_BENCH_EVENTS=5000000 RETENTION_BENCH_WINDOW=10s \
//	  go test -run '^$' -bench PruneWhilePublishing -benchtime 1x -timeout 2h ./internal/retention/
func BenchmarkPruneWhilePublishing(b *testing.B) {
	events := env(b, "RETENTION_BENCH_EVENTS", 100_000, strconv.Atoi)
	window := env(b, "RETENTION_BENCH_WINDOW", 2*time.Second, time.ParseDuration)
	maxWindows := env(b, "RETENTION_BENCH_WINDOWS", 0, strconv.Atoi)
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"rest=0", Config{Rest: -1}}, // steps back to back
		{"default", Config{}},
		// The defaults before commit 84a5c2d, for comparison.
		{"rest=1,budget=100ms", Config{Rest: 1, StepBudget: 100 * time.Millisecond}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchPruneWhilePublishing(b, events, window, maxWindows, bc.cfg)
		})
	}
}

// benchPruneWhilePublishing runs the benchmark with the service configured by
// cfg, whose Pool and Retention it sets.
func benchPruneWhilePublishing(b *testing.B, events int, window time.Duration, maxWindows int, cfg Config) {
	ctx := context.Background()
	pool := pgtest.NewPool(b)
	fillStart := time.Now()
	fillExpired(b, pool, events)
	b.Logf("filled %d events in %v", events, time.Since(fillStart).Round(time.Millisecond))

	sub := startLiveSubscriber(b, pool)

	const publishers = 8
	publishFor := func(d time.Duration, kind byte) int64 {
		var n atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(d)
		for range publishers {
			wg.Go(func() {
				for time.Now().Before(stop) {
					if _, err := pool.Exec(ctx, "SELECT streamer.publish('bench:live', $1)", sub.stamp(kind)); err != nil {
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
	cfg.Pool, cfg.Retention = svcPool, time.Hour
	var steps atomic.Int64
	var stepTime atomic.Int64 // nanoseconds
	cfg.onStep = func(_ time.Time, took time.Duration, _ int, _ int64) {
		steps.Add(1)
		stepTime.Add(int64(took))
	}
	svc := New(cfg)

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
	for pruned() < int64(events) && (maxWindows == 0 || windows < maxWindows) {
		require.Less(b, windows, 1000, "pruning did not finish")
		windows++
		idleTx += publishFor(window, kindIdle)
		idleTime += window

		began := time.Now()
		require.NoError(b, svc.Start(ctx))
		busyTx += publishFor(window, kindBusy)
		svc.Stop() // a step under way is rolled back
		busyTime += time.Since(began)
	}
	done := pruned()
	if maxWindows == 0 {
		require.Equal(b, int64(events), done)
	}
	idleLat, busyLat := sub.finish(b, pool, idleTx+busyTx)

	idleRate := float64(idleTx) / idleTime.Seconds()
	busyRate := float64(busyTx) / busyTime.Seconds()
	// A lower bound: the last busy window ends after the pruning did.
	b.ReportMetric(float64(done)/busyTime.Seconds(), "pruned_events/s")
	b.ReportMetric(idleRate, "publish_tx/s_idle")
	b.ReportMetric(busyRate, "publish_tx/s_pruning")
	b.ReportMetric(100*busyRate/idleRate, "publish_%_of_idle")
	idle50, idle99 := percentile(idleLat, 50), percentile(idleLat, 99)
	busy50, busy99 := percentile(busyLat, 50), percentile(busyLat, 99)
	b.ReportMetric(float64(idle99.Microseconds())/1000, "live_p99_ms_idle")
	b.ReportMetric(float64(busy99.Microseconds())/1000, "live_p99_ms_pruning")
	b.ReportMetric(float64(busy99)/float64(idle99), "live_p99_pruning/idle")
	b.ReportMetric(float64(stepTime.Load())/float64(max(steps.Load(), 1))/1e6, "step_ms_mean")
	b.Logf("pruned %d of %d events in %d windows of %v (%v pruning, %d steps); publishing %.0f tx/s idle, %.0f tx/s while pruning",
		done, events, windows, window, busyTime.Round(time.Millisecond), steps.Load(), idleRate, busyRate)
	b.Logf("live delivery: idle p50 %v p99 %v (%d events), pruning p50 %v p99 %v (%d events)",
		idle50, idle99, len(idleLat), busy50, busy99, len(busyLat))
}

// Kinds of window, carried in the first byte of a benchmark event's data.
const (
	kindIdle = 'i'
	kindBusy = 'b'
	kindEnd  = 'e'
)

// liveSubscriber is a dispatch.Subscriber that records, for every frame,
// the time since its event's publish was called. Frames come from the
// dispatcher goroutine only, one at a time.
type liveSubscriber struct {
	epoch time.Time // stamps are monotonic durations since epoch
	done  chan struct{}
	end   chan struct{} // closed when the kindEnd event arrives

	mu         sync.Mutex
	idle, busy []time.Duration
	received   int64
	bad        error
}

// startLiveSubscriber starts a dispatcher and a listener on pools of their
// own and subscribes a liveSubscriber to bench:live from now; the
// benchmark's cleanup stops them.
func startLiveSubscriber(b *testing.B, pool *pgxpool.Pool) *liveSubscriber {
	ctx := context.Background()
	url := pool.Config().ConnString()
	dispPool, err := pgxpool.New(ctx, url)
	require.NoError(b, err)
	b.Cleanup(dispPool.Close)
	disp := dispatch.New(dispatch.Config{Pool: dispPool, Registry: registry.New[dispatch.Subscriber](),
		ReplayWorkers: 1, Logger: zerolog.Nop()})
	require.NoError(b, disp.Start(ctx))
	b.Cleanup(disp.Stop)
	lis := listener.New(listener.Config{DatabaseURL: url, Waker: disp, Logger: zerolog.Nop()})
	require.NoError(b, lis.Start(ctx))
	b.Cleanup(lis.Stop)

	sub := &liveSubscriber{epoch: time.Now(), done: make(chan struct{}), end: make(chan struct{})}
	_, err = disp.Subscribe(ctx, sub, []string{"bench:live"}, nil, nil)
	require.NoError(b, err)
	b.Cleanup(func() { disp.Unsubscribe(sub) })
	return sub
}

// stamp returns 100 bytes of event data: the window kind, then the time
// since epoch in nanoseconds, then padding.
func (s *liveSubscriber) stamp(kind byte) string {
	head := fmt.Sprintf("%c%019d", kind, time.Since(s.epoch).Nanoseconds())
	return head + payload100[len(head):]
}

// EnqueueHeld measures like Enqueue: the stamp, not the commit time.
func (s *liveSubscriber) EnqueueHeld(frame []byte, _ time.Time) bool { return s.Enqueue(frame) }

func (s *liveSubscriber) Release() {}

func (s *liveSubscriber) Enqueue(frame []byte) bool {
	now := time.Since(s.epoch)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, data, ok := bytes.Cut(frame, []byte("\ndata: "))
	if !ok || len(data) < 20 {
		s.bad = fmt.Errorf("frame without a stamp: %q", frame)
		return true
	}
	sent, err := strconv.ParseInt(string(data[1:20]), 10, 64)
	if err != nil {
		s.bad = fmt.Errorf("stamp of %q: %w", frame, err)
		return true
	}
	lat := now - time.Duration(sent)
	switch data[0] {
	case kindIdle:
		s.idle = append(s.idle, lat)
	case kindBusy:
		s.busy = append(s.busy, lat)
	case kindEnd:
		close(s.end)
		return true
	}
	s.received++
	return true
}

func (s *liveSubscriber) EnqueueWait(_ context.Context, frame []byte) error {
	s.Enqueue(frame)
	return nil
}

func (s *liveSubscriber) Close(error)           {}
func (s *liveSubscriber) Done() <-chan struct{} { return s.done }

// finish publishes an end marker, waits for it (events on one stream
// arrive in order, so every earlier one has arrived too), checks that all
// published events were received, and returns the latencies, sorted.
func (s *liveSubscriber) finish(b *testing.B, pool *pgxpool.Pool, published int64) (idle, busy []time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := pool.Exec(ctx, "SELECT streamer.publish('bench:live', $1)", s.stamp(kindEnd))
	require.NoError(b, err)
	select {
	case <-s.end:
	case <-ctx.Done():
		b.Fatal("the end marker was not delivered within a minute")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NoError(b, s.bad)
	require.Equal(b, published, s.received, "events delivered to the live subscriber")
	slices.Sort(s.idle)
	slices.Sort(s.busy)
	return s.idle, s.busy
}

// percentile returns the p-th percentile of sorted (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

// payload100 is 100 bytes of data.
const payload100 = "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"

// fillExpired inserts n events of payload100 on 1,000 streams, one per
// commit, committed two hours ago.
func fillExpired(tb testing.TB, pool *pgxpool.Pool, n int) {
	tb.Helper()
	pgtest.WriteHistory(tb, pool, pgtest.History{
		Commits: n, Streams: 1000, Prefix: "bench:", Data: payload100, Age: 2 * time.Hour,
	})
}

// env returns the environment variable name as parse reads it, or def
// when it is unset.
func env[T any](tb testing.TB, name string, def T, parse func(string) (T, error)) T {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := parse(s)
	require.NoError(tb, err, name)
	return v
}
