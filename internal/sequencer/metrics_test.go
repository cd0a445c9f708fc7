package sequencer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/sequencer"
	"github.com/streamer-dev/streamer/internal/testsignal"
	"github.com/streamer-dev/streamer/migrations"
)

// recorder is a sequencer.Metrics that keeps every call.
type recorder struct {
	mu     sync.Mutex
	ticks  []int // numbered, per tick
	took   []time.Duration
	locks  int
	errors int
	queue  []float64
}

func (r *recorder) NotifyQueueUsage(f float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queue = append(r.queue, f)
}

// lastQueue returns the last NOTIFY queue usage reported, -1 before any.
func (r *recorder) lastQueue() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queue) == 0 {
		return -1
	}
	return r.queue[len(r.queue)-1]
}

func (r *recorder) SequencerTicked(n int, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ticks = append(r.ticks, n)
	r.took = append(r.took, d)
}

func (r *recorder) SequencerTookLock() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.locks++
}

func (r *recorder) SequencerFailed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors++
}

// snapshot returns what was recorded so far.
func (r *recorder) snapshot() (ticks []int, took []time.Duration, locks, errors int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.ticks...), append([]time.Duration(nil), r.took...), r.locks, r.errors
}

// TestMetrics: each tick in ticks mode is reported with what it numbered
// and its duration, never a trigger-mode call; taking the lock and an
// error are counted, the takeover after it again.
func TestMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := triggerDB(t)
	rec := &recorder{}
	s, sig, pid := startWith(t, url, sequencer.Config{Metrics: rec, ModeInterval: 20 * time.Millisecond})

	// Trigger mode: asked for the mode, nothing counted as a tick.
	require.Equal(t, 20*time.Millisecond, sig.Waited.WaitOrTimeout(t).Wait)
	ticks, _, locks, errs := rec.snapshot()
	require.Empty(t, ticks, "a trigger-mode call counted as a tick")
	require.Equal(t, 1, locks)
	require.Zero(t, errs)

	// Switched while running: the next ask finds ticks mode.
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.NoError(t, migrations.SetOrdering(ctx, conn, migrations.Ticks))
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	exec(t, pool, "INSERT INTO streamer.events (stream, data) VALUES ('s', 'a'), ('s', 'b')")
	exec(t, pool, "INSERT INTO streamer.events (stream, data) VALUES ('s', 'c')")
	var seen int
	for seen < 2 {
		seen += sig.Waited.WaitOrTimeout(t).Numbered
	}
	require.Equal(t, 2, seen, "two transactions")
	ticks, took, _, _ := rec.snapshot()
	sum := 0
	for i, n := range ticks {
		sum += n
		require.Positive(t, took[i])
	}
	require.Equal(t, 2, sum)

	// An error, then the lock again.
	_, err = pgtest.Admin(t).Exec(ctx, "SELECT pg_terminate_backend($1)", int32(pid))
	require.NoError(t, err)
	sig.Failed.WaitOrTimeout(t)
	sig.Leading.WaitOrTimeout(t)
	require.True(t, s.Leading())
	_, _, locks, errs = rec.snapshot()
	require.Equal(t, 2, locks)
	require.Equal(t, 1, errs)
}

// TestNotifyQueueUsage: the sequencer reports how full the NOTIFY queue is,
// in trigger mode too. A session that LISTENs inside an open transaction
// holds the queue's tail (a backend takes notifications only between
// transactions), so notifications sent meanwhile fill it.
func TestNotifyQueueUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := triggerDB(t)
	rec := &recorder{}
	_, sig, _ := startWith(t, url, sequencer.Config{Metrics: rec, ModeInterval: 10 * time.Millisecond})
	sig.Waited.WaitOrTimeout(t)
	require.GreaterOrEqual(t, rec.lastQueue(), 0.0, "reported after the first mode check")

	holder, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer holder.Close(ctx)
	_, err = holder.Exec(ctx, "LISTEN queue_test")
	require.NoError(t, err)
	tx, err := holder.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	// Three pages' worth (the usage counts whole 8 KiB pages).
	for range 3 {
		exec(t, pool, "SELECT pg_notify('queue_test', repeat('x', 7000))")
	}
	deadline := time.Now().Add(testsignal.Timeout)
	for rec.lastQueue() <= 0 {
		require.True(t, time.Now().Before(deadline), "the held NOTIFY queue was never reported in use")
		sig.Waited.WaitOrTimeout(t)
	}
}
