package sequencer_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/sequencer"
	"github.com/streamer-dev/streamer/internal/testsignal"
	"github.com/streamer-dev/streamer/migrations"
)

// ticksDB returns a fresh database in ticks mode and a pool on it.
func ticksDB(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	url := pgtest.NewDB(t)
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	require.NoError(t, migrations.SetOrdering(context.Background(), conn, migrations.Ticks))
	require.NoError(t, conn.Close(context.Background()))
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.MaxConns = 12
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return url, pool
}

func start(t *testing.T, url string) (*sequencer.Sequencer, *sequencer.TestSignals) {
	t.Helper()
	return launch(t, url, sequencer.Config{})
}

// requireNumberedOnce checks that every committed transaction with events
// has exactly one commits row: none numbered twice, none left out.
func requireNumberedOnce(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	var dupTxids, unnumbered int
	require.NoError(t, pool.QueryRow(context.Background(), `
		SELECT (SELECT count(*) FROM (SELECT txid FROM streamer.commits GROUP BY txid HAVING count(*) > 1) d),
		       (SELECT count(*) FROM streamer.events e WHERE NOT EXISTS (SELECT 1 FROM streamer.commits c WHERE c.txid = e.txid))`).
		Scan(&dupTxids, &unnumbered))
	require.Zero(t, dupTxids, "a transaction numbered twice")
	require.Zero(t, unnumbered, "a committed transaction never numbered")
}

// requireExact checks the database's delivery order against what was
// committed: every committed event has exactly one position, events of one
// transaction are consecutive and in id order, and a transaction that
// committed before another began comes first (published by one goroutine,
// one after another: so per goroutine, in publishing order).
func requireExact(t *testing.T, pool *pgxpool.Pool, committed map[string]bool) {
	t.Helper()
	ctx := context.Background()
	requireNumberedOnce(t, pool)

	rows, err := pool.Query(ctx, `SELECT e.data FROM streamer.commits c JOIN streamer.events e USING (txid) ORDER BY c.seq, e.id`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Len(t, got, len(committed))
	last := map[int]int{}
	for _, d := range got {
		require.True(t, committed[d], "delivered %q, which was not committed", d)
		var p, i int
		_, err := fmt.Sscanf(d, "p%d-%d", &p, &i)
		require.NoError(t, err)
		if prev, ok := last[p]; ok {
			require.Greater(t, i, prev, "publisher %d's transactions out of order", p)
		}
		last[p] = i
	}
}

// TestFailover kills the sequencing server's connection under load: the
// other sequencer takes the lock and goes on, and the delivery order ends
// exact (nothing numbered twice, nothing left out, the contract's order).
func TestFailover(t *testing.T) {
	t.Parallel()
	url, pool := ticksDB(t)
	ctx := context.Background()

	a, aSig := start(t, url)
	aPID := aSig.Leading.WaitOrTimeout(t)
	b, bSig := start(t, url)
	require.True(t, a.Leading())
	require.False(t, b.Leading())

	const publishers, each = 6, 150
	var mu sync.Mutex
	committed := map[string]bool{}
	var published atomic.Int64
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				d := fmt.Sprintf("p%d-%d", p, i)
				// Some transactions carry two events, some roll back.
				tx, err := pool.Begin(ctx)
				if !assertNoError(t, err) {
					return
				}
				_, err = tx.Exec(ctx, "INSERT INTO streamer.events (stream, data) VALUES ('s', $1)", d)
				if !assertNoError(t, err) {
					return
				}
				if i%7 == 3 {
					assertNoError(t, tx.Rollback(ctx))
					continue
				}
				if !assertNoError(t, tx.Commit(ctx)) {
					return
				}
				mu.Lock()
				committed[d] = true
				mu.Unlock()
				published.Add(1)
			}
		})
	}
	// Kill the sequencing server's session mid-load.
	for published.Load() < publishers*each/3 {
		aSig.Ticked.WaitOrTimeout(t)
	}
	_, err := pgtest.Admin(t).Exec(ctx, "SELECT pg_terminate_backend($1)", int32(aPID))
	require.NoError(t, err)
	a.Stop() // the dead server does not come back
	bSig.Leading.WaitOrTimeout(t)
	require.True(t, b.Leading())
	wg.Wait()

	// b numbers everything that committed: wait for a tick after the last
	// commit that numbered nothing more.
	deadline := time.Now().Add(testsignal.Timeout)
	for {
		var left int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM streamer.events e
			WHERE NOT EXISTS (SELECT 1 FROM streamer.commits c WHERE c.txid = e.txid)`).Scan(&left))
		if left == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "%d events never numbered", left)
		bSig.Ticked.WaitOrTimeout(t)
	}
	requireExact(t, pool, committed)
}

// TestConcurrentTickers runs ticks from many sessions at once, with
// publishers, as a sequencer and streamer.head() callers do: the ordering
// row serialises them, so nothing is numbered twice or left out.
func TestConcurrentTickers(t *testing.T) {
	t.Parallel()
	_, pool := ticksDB(t)
	ctx := context.Background()
	var mu sync.Mutex
	committed := map[string]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var tickers sync.WaitGroup
	for range 4 {
		tickers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := pool.Exec(ctx, "SELECT streamer.tick(); SELECT streamer.head()")
				if !assertNoError(t, err) {
					return
				}
			}
		})
	}
	for p := range 4 {
		wg.Go(func() {
			for i := range 100 {
				d := fmt.Sprintf("p%d-%d", p, i)
				_, err := pool.Exec(ctx, "INSERT INTO streamer.events (stream, data) VALUES ('s', $1), ('s', $1 || '-b')", d)
				if !assertNoError(t, err) {
					return
				}
				mu.Lock()
				committed[d], committed[d+"-b"] = true, true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	tickers.Wait()
	_, err := pool.Exec(ctx, "SELECT streamer.tick()")
	require.NoError(t, err)
	// "-b" rows parse as the same publisher index: drop them from the
	// per-publisher order check by comparing sets and order separately.
	requireNumberedOnce(t, pool)
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM streamer.commits c JOIN streamer.events e USING (txid)`).Scan(&n))
	require.Equal(t, len(committed), n)
}

// TestHeadExact: a head() token taken while a transaction is open and
// another has committed but is not numbered yet splits them exactly.
func TestHeadExact(t *testing.T) {
	t.Parallel()
	_, pool := ticksDB(t)
	ctx := context.Background()
	exec(t, pool, "INSERT INTO streamer.events (stream, data) VALUES ('s', 'before')")
	open, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = open.Exec(ctx, "INSERT INTO streamer.events (stream, data) VALUES ('s', 'open')")
	require.NoError(t, err)
	// head() inside the open transaction must not number it either.
	var inside string
	require.NoError(t, open.QueryRow(ctx, "SELECT streamer.head()").Scan(&inside))
	require.NoError(t, open.Commit(ctx))
	var head string
	require.NoError(t, pool.QueryRow(ctx, "SELECT streamer.head()").Scan(&head))
	exec(t, pool, "INSERT INTO streamer.events (stream, data) VALUES ('s', 'after')")
	exec(t, pool, "SELECT streamer.tick()")

	after := func(token string) []string { return pgtest.DataAfter(t, pool, token) }
	require.Equal(t, []string{"open", "after"}, after(inside))
	require.Equal(t, []string{"after"}, after(head))
}

// exec runs sql on pool and requires it to succeed.
func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	_, err := pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

func assertNoError(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

// TestTickPlan: a tick probes events_txid_id_idx per candidate xid and
// never scans streamer.events, whether few xids were assigned since the
// last tick (candidates from the snapshots) or more than 10,000 (a loose
// index scan), on a table of 100,000 rows. Checked with the transaction's
// own statistics (pg_stat_xact_user_tables), which count every scan.
func TestTickPlan(t *testing.T) {
	t.Parallel()
	_, pool := ticksDB(t)
	ctx := context.Background()
	exec(t, pool, "INSERT INTO streamer.events (stream, data) SELECT 's' || (g % 100), 'x' FROM generate_series(1, 100000) g")
	exec(t, pool, "SELECT streamer.tick(); ANALYZE streamer.events")

	tickScans := func() (seqScans, numbered int64) {
		t.Helper()
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		require.NoError(t, tx.QueryRow(ctx, "SELECT streamer.tick()").Scan(&numbered))
		require.NoError(t, tx.QueryRow(ctx,
			"SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'streamer.events'::regclass").Scan(&seqScans))
		require.NoError(t, tx.Commit(ctx))
		return seqScans, numbered
	}
	t.Run("few xids since the last tick", func(t *testing.T) {
		for i := range 50 {
			exec(t, pool, "INSERT INTO streamer.events (stream, data) VALUES ('s', $1)", fmt.Sprint(i))
		}
		seqScans, numbered := tickScans()
		require.Equal(t, int64(50), numbered)
		require.Zero(t, seqScans)
	})
	t.Run("more than 10,000 xids since the last tick", func(t *testing.T) {
		exec(t, pool, `DO $$ BEGIN
			FOR i IN 1..10050 LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$`)
		exec(t, pool, "INSERT INTO streamer.events (stream, data) VALUES ('s', 'after the gap')")
		seqScans, numbered := tickScans()
		require.Equal(t, int64(1), numbered)
		require.Zero(t, seqScans)
	})
}

// TestWaits: after a tick that numbered something the sequencer waits
// Interval, and keeps to it while ticks find nothing for Linger, so that
// a publisher committing every few milliseconds never meets a backed-off
// tick; after Linger the wait doubles up to IdleInterval.
func TestWaits(t *testing.T) {
	t.Parallel()
	const interval, idle = time.Millisecond, 4 * time.Millisecond
	for _, tc := range []struct {
		name   string
		linger time.Duration
		want   []time.Duration // the waits after the empty ticks that follow
	}{
		{"within Linger", time.Hour, []time.Duration{interval, interval, interval, interval}},
		{"after Linger", time.Nanosecond, []time.Duration{2 * interval, idle, idle, idle}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, pool := ticksDB(t)
			sig := &sequencer.TestSignals{}
			sig.Init()
			s := sequencer.New(sequencer.Config{DatabaseURL: url, TestSignals: sig,
				Interval: interval, IdleInterval: idle, Linger: tc.linger,
				Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
			require.NoError(t, s.Start(context.Background()))
			t.Cleanup(s.Stop)
			sig.Leading.WaitOrTimeout(t)
			exec(t, pool, "INSERT INTO streamer.events (stream, data) VALUES ('s', 'x')")
			for {
				tk := sig.Waited.WaitOrTimeout(t)
				if tk.Numbered > 0 {
					require.Equal(t, 1, tk.Numbered)
					require.Equal(t, interval, tk.Wait)
					break
				}
			}
			for _, want := range tc.want {
				tk := sig.Waited.WaitOrTimeout(t)
				require.Zero(t, tk.Numbered)
				require.Equal(t, want, tk.Wait)
				require.False(t, tk.Poked)
			}
		})
	}
}

// TestEmptyTickReadOnly: a tick that finds nothing to number takes no xid,
// so no row lock (FOR UPDATE would assign one): it writes nothing, and
// leaves no xid for the next tick to probe. Checked right after a tick
// that numbered something, whose own xid is then a candidate.
func TestEmptyTickReadOnly(t *testing.T) {
	t.Parallel()
	_, pool := ticksDB(t)
	ctx := context.Background()
	exec(t, pool, "INSERT INTO streamer.events (stream, data) VALUES ('s', 'x')")
	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT streamer.tick()").Scan(&n))
	require.Equal(t, 1, n)

	var xid *string
	require.NoError(t, pool.QueryRow(ctx, "SELECT streamer.tick(), pg_current_xact_id_if_assigned()::text").Scan(&n, &xid))
	require.Zero(t, n)
	require.Nil(t, xid, "an empty tick took an xid")
}

// TestRecordsItsBackend: in ticks mode the leading sequencer records its
// backend in streamer.ordering.sequencer_pid (dispatchers apply tick
// notifications from it alone), again after a failover; in trigger mode it
// writes nothing, so a read-only database still serves it.
func TestRecordsItsBackend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	recorded := func(pool *pgxpool.Pool) *int32 {
		var pid *int32
		require.NoError(t, pool.QueryRow(ctx, "SELECT sequencer_pid FROM streamer.ordering").Scan(&pid))
		return pid
	}

	t.Run("ticks", func(t *testing.T) {
		t.Parallel()
		url, pool := ticksDB(t)
		_, sig, pid := startWith(t, url, sequencer.Config{})
		for range 2 { // the first tick records, the second shows it done
			exec(t, pool, "INSERT INTO streamer.events (stream, data) VALUES ('s', 'a')")
			sig.Ticked.WaitOrTimeout(t)
		}
		require.Equal(t, int32(pid), *recorded(pool))

		_, err := pgtest.Admin(t).Exec(ctx, "SELECT pg_terminate_backend($1)", int32(pid))
		require.NoError(t, err)
		again := sig.Leading.WaitOrTimeout(t)
		require.NotEqual(t, pid, again)
		for range 2 {
			exec(t, pool, "INSERT INTO streamer.events (stream, data) VALUES ('s', 'b')")
			sig.Ticked.WaitOrTimeout(t)
		}
		require.Equal(t, int32(again), *recorded(pool), "recorded again after the failover")
	})

	t.Run("trigger", func(t *testing.T) {
		t.Parallel()
		url := triggerDB(t)
		pool, err := pgxpool.New(ctx, url)
		require.NoError(t, err)
		defer pool.Close()
		_, sig, _ := startWith(t, url, sequencer.Config{ModeInterval: 10 * time.Millisecond})
		for range 3 {
			sig.Waited.WaitOrTimeout(t)
		}
		require.Nil(t, recorded(pool))
	})
}

// TestAnnouncesItself: a sequencer that records its backend in ticks mode
// also announces it (sequencer.Announcement) from that backend, committed
// with the record, so that dispatchers read the record again; again after
// a failover.
func TestAnnouncesItself(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, pool := ticksDB(t)
	listen, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer listen.Close(ctx)
	_, err = listen.Exec(ctx, "LISTEN streamer")
	require.NoError(t, err)
	announced := func(pid uint32) {
		t.Helper()
		waitCtx, cancel := context.WithTimeout(ctx, testsignal.Timeout)
		defer cancel()
		for {
			note, err := listen.WaitForNotification(waitCtx)
			require.NoError(t, err, "no announcement from %d", pid)
			if note.Payload != sequencer.Announcement {
				continue // a tick's
			}
			require.Equal(t, pid, note.PID)
			var recorded int32
			require.NoError(t, pool.QueryRow(ctx, "SELECT sequencer_pid FROM streamer.ordering").Scan(&recorded))
			require.Equal(t, int32(pid), recorded, "announced before the record committed")
			return
		}
	}

	_, sig, pid := startWith(t, url, sequencer.Config{})
	announced(pid)
	_, err = pgtest.Admin(t).Exec(ctx, "SELECT pg_terminate_backend($1)", int32(pid))
	require.NoError(t, err)
	announced(sig.Leading.WaitOrTimeout(t))
}

// TestRecordsWithItsFirstTick: a sequencer records its backend in the
// transaction of its first tick, so that tick's notifications commit with
// the record and are trusted (a dispatcher that looks the record up on
// them finds this backend, not the last sequencer's). The ordering row's
// last writer is that tick's transaction: the one that wrote the commits
// row.
func TestRecordsWithItsFirstTick(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, pool := ticksDB(t)
	exec(t, pool, "INSERT INTO streamer.events (stream, data) VALUES ('s', 'a')")
	_, sig, pid := startWith(t, url, sequencer.Config{})
	require.Equal(t, 1, sig.Ticked.WaitOrTimeout(t), "the first tick numbers the event")
	var recorded int32
	var together bool
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT o.sequencer_pid, o.xmin::text = c.xmin::text
		  FROM streamer.ordering o, streamer.commits c`).Scan(&recorded, &together))
	require.Equal(t, int32(pid), recorded)
	require.True(t, together, "recorded in a transaction of its own, after the tick")
}
