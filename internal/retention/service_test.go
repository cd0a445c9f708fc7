package retention

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/faultproxy"
	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/startstop/startstoptest"
	"github.com/streamer-dev/streamer/migrations"
)

type bundle struct {
	pool    *pgxpool.Pool
	signals *TestSignals
	pruned  *atomic.Int64 // sum of OnPruned calls
}

func setup(t *testing.T, cfg Config) (*Service, bundle) {
	t.Helper()
	if cfg.Pool == nil {
		cfg.Pool = pgtest.NewPool(t)
	}
	b := bundle{pool: cfg.Pool, signals: &TestSignals{}, pruned: &atomic.Int64{}}
	b.signals.Init()
	cfg.TestSignals = b.signals
	cfg.OnPruned = func(n int64) { b.pruned.Add(n) }
	s := New(cfg)
	t.Cleanup(s.Stop)
	return s, b
}

func TestStress(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{Retention: time.Hour, Interval: time.Millisecond})
	startstoptest.Stress(t, s)
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		cfg       Config
		interval  time.Duration
		retention time.Duration
	}{
		{"a week prunes every minute", Config{Retention: 168 * time.Hour}, time.Minute, 168 * time.Hour},
		{"ten seconds every five", Config{Retention: 10 * time.Second}, 5 * time.Second, 10 * time.Second},
		{"a longer interval is lowered", Config{Retention: 10 * time.Second, Interval: time.Hour}, 5 * time.Second, 10 * time.Second},
		{"a shorter interval is kept", Config{Retention: time.Hour, Interval: time.Second}, time.Second, time.Hour},
		{"negative is off", Config{Retention: -time.Second}, time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.cfg.withDefaults()
			require.Equal(t, tc.interval, got.Interval)
			require.Equal(t, tc.retention, got.Retention)
		})
	}
	t.Run("rest", func(t *testing.T) {
		require.Equal(t, DefaultRest, Config{}.withDefaults().Rest)
		require.Equal(t, 0.5, Config{Rest: 0.5}.withDefaults().Rest)
		require.Zero(t, Config{Rest: -1}.withDefaults().Rest, "negative: no pause")
	})
}

// TestOff: Retention 0 runs nothing and prunes nothing.
func TestOff(t *testing.T) {
	t.Parallel()
	s, b := setup(t, Config{Retention: 0})
	publish(t, b.pool, "a", "kept")
	require.NoError(t, s.Start(context.Background()))
	select {
	case <-s.Stopped(): // nothing was started
	default:
		t.Fatal("Start with Retention 0 started the service")
	}
	require.Equal(t, []string{"kept"}, dataLeft(t, b.pool))
}

// TestPrunesInBackground: with a retention of a second, committed events
// disappear, and the service counts them.
func TestPrunesInBackground(t *testing.T) {
	t.Parallel()
	s, b := setup(t, Config{Retention: time.Second, MaxStepCommits: 2})
	for range 5 {
		publish(t, b.pool, "a", "1", "2")
	}
	require.NoError(t, s.Start(context.Background()))

	var total int64
	for total < 10 { // each wait fails the test after testsignal.Timeout
		p := b.signals.PassDone.WaitOrTimeout(t)
		require.NoError(t, p.Err)
		require.False(t, p.Skipped)
		total += p.Events
	}
	require.Equal(t, int64(10), total)
	require.Empty(t, dataLeft(t, b.pool))
	require.Equal(t, int64(10), s.PrunedEvents())
	require.Equal(t, int64(10), b.pruned.Load())
}

// holdPruneStepLock takes the lock every streamer.prune_step waits for, in a
// transaction that the caller commits (or the cleanup rolls back) to let
// steps go on.
func holdPruneStepLock(t *testing.T, pool *pgxpool.Pool) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	_, err = tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", migrations.LockClass, migrations.PruneStepLockID)
	require.NoError(t, err)
	return tx
}

// oldEventBlocked returns a database that holds one event, "old", and the
// transaction that holds the lock its prune steps wait for.
func oldEventBlocked(t *testing.T) (*pgxpool.Pool, pgx.Tx) {
	t.Helper()
	pool := pgtest.NewPool(t)
	publish(t, pool, "a", "old")
	return pool, holdPruneStepLock(t, pool)
}

// TestOneAtATime: while one service holds the service lock, another on the
// same database skips its passes; once the first is done, the rows are
// gone and only the first removed them.
func TestOneAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The prune lock is held, so that the first service's step waits
	// inside its pass, with the service lock held.
	pool, blocker := oldEventBlocked(t)

	cfg := Config{Pool: pool, Retention: time.Millisecond, Interval: time.Millisecond, StepBudget: time.Minute}
	first, fb := setup(t, cfg)
	require.NoError(t, first.Start(ctx))
	fb.signals.Locked.WaitOrTimeout(t)

	second, sb := setup(t, cfg)
	require.NoError(t, second.Start(ctx))
	for range 3 {
		p := sb.signals.PassDone.WaitOrTimeout(t)
		require.True(t, p.Skipped, "the second service pruned while the first held the lock: %+v", p)
	}
	sb.signals.Locked.RequireEmpty(t)

	require.NoError(t, blocker.Commit(ctx))
	p := fb.signals.PassDone.WaitOrTimeout(t)
	require.NoError(t, p.Err)
	require.Equal(t, int64(1), p.Events)
	require.Empty(t, dataLeft(t, pool))
	first.Stop()
	second.Stop()
	require.Equal(t, int64(1), first.PrunedEvents())
	require.Zero(t, second.PrunedEvents())
}

// TestLockReleasedAfterPass: a pass gives the service lock back.
func TestLockReleasedAfterPass(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, b := setup(t, Config{Retention: time.Hour})
	require.NoError(t, s.Start(ctx))
	p := b.signals.PassDone.WaitOrTimeout(t)
	require.NoError(t, p.Err)
	s.Stop()
	var held int
	require.NoError(t, b.pool.QueryRow(ctx,
		"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2"+
			" AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
		LockClassID, LockObjID).Scan(&held))
	require.Zero(t, held, "the service lock outlived the pass")
}

// TestStepTimeout: a step that the server cancels (statement_timeout, here
// because a manual prune holds the prune lock) is retried smaller, the pass
// then fails with the timeout, and a later pass prunes.
func TestStepTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, blocker := oldEventBlocked(t)

	s, b := setup(t, Config{Pool: pool, Retention: time.Millisecond, Interval: time.Millisecond, StepBudget: 5 * time.Millisecond})
	require.NoError(t, s.Start(ctx))
	p := b.signals.PassDone.WaitOrTimeout(t)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, p.Err, &pgErr)
	require.Equal(t, "57014", pgErr.Code, "query_canceled by statement_timeout")
	require.Zero(t, p.Steps)

	require.NoError(t, blocker.Commit(ctx))
	for i := 0; ; i++ {
		require.Less(t, i, 100, "no pass pruned after the lock was released")
		p := b.signals.PassDone.WaitOrTimeout(t)
		if p.Err == nil && p.Events == 1 {
			break
		}
	}
	require.Empty(t, dataLeft(t, pool))
}

// TestSilentPassReleasesLock: a server that goes silent in the middle of a
// pass (its connection blackholed: no FIN, no RST) loses the service lock
// once SilenceTimeout has passed, and another server's pass takes it.
func TestSilentPassReleasesLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The first service's step waits for the prune lock with the service
	// lock held; it goes silent then, and its step ends inside the
	// transaction once the prune lock is free.
	pool, blocker := oldEventBlocked(t)
	ppool, p := pgtest.ProxiedPool(t, pool.Config().ConnString(), 1, "")

	cfg := Config{Retention: 400 * time.Millisecond, StepBudget: time.Minute, Rest: -1, SilenceTimeout: time.Second}
	cfg.Pool = ppool
	first, fb := setup(t, cfg)
	require.NoError(t, first.Start(ctx))
	fb.signals.Locked.WaitOrTimeout(t)

	cfg.Pool = pool
	second, sb := setup(t, cfg)
	require.NoError(t, second.Start(ctx))
	require.True(t, sb.signals.PassDone.WaitOrTimeout(t).Skipped)

	p.SetAll(faultproxy.Both, faultproxy.Fault{Blackhole: true})
	require.NoError(t, blocker.Commit(ctx))
	sb.signals.Locked.WaitOrTimeout(t)
	pass := sb.signals.PassDone.WaitOrTimeout(t)
	for pass.Skipped { // passes that ended before it took the lock
		pass = sb.signals.PassDone.WaitOrTimeout(t)
	}
	require.NoError(t, pass.Err)
	require.Equal(t, int64(1), pass.Events, "the second service pruned")
	require.Empty(t, dataLeft(t, pool))
}

// TestPassUnboundsSession: a pass leaves its pooled connection without
// the idle bound it set for itself, or the pool's connection would be
// ended while it waits for the next pass.
func TestPassUnboundsSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDB(t))
	require.NoError(t, err)
	cfg.MaxConns = 1 // the pass's connection is the one read below
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	s, b := setup(t, Config{Pool: pool, Retention: time.Hour})
	require.NoError(t, s.Start(ctx))
	require.NoError(t, b.signals.PassDone.WaitOrTimeout(t).Err)
	s.Stop()
	var inTx, idle string
	require.NoError(t, pool.QueryRow(ctx, "SELECT current_setting('idle_in_transaction_session_timeout'), current_setting('idle_session_timeout')").Scan(&inTx, &idle))
	require.Equal(t, []string{"0", "0"}, []string{inTx, idle})
}
