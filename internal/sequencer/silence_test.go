package sequencer_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/faultproxy"
	"github.com/streamer-dev/streamer/internal/sequencer"
	"github.com/streamer-dev/streamer/internal/testsignal"
	"github.com/streamer-dev/streamer/migrations"
)

// TestSilentSessionReleasesLock: a sequencer's session that goes silent
// without its connection closing (blackholed, as when its server freezes or
// is cut off and PostgreSQL sees no FIN) gives the lock up once
// SilenceTimeout has passed, and another sequencer leads. Both ways a
// session holds the lock: leading when it goes silent, and waiting, so
// that the lock comes to it after its server is gone.
func TestSilentSessionReleasesLock(t *testing.T) {
	t.Parallel()
	const silence = time.Second
	cfg := sequencer.Config{SilenceTimeout: silence, ModeInterval: 50 * time.Millisecond}
	ctx := context.Background()
	// lockPIDs returns the backends granted the sequencer lock of pool's
	// database, or those waiting for it.
	lockPIDs := func(t *testing.T, pool *pgxpool.Pool, granted bool) []uint32 {
		rows, err := pool.Query(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory'
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND classid = $1 AND objid = $2 AND granted = $3 ORDER BY pid`,
			int64(migrations.LockClass), int64(migrations.SequencerLockID), granted)
		require.NoError(t, err)
		var pids []uint32
		for rows.Next() {
			var pid int32
			require.NoError(t, rows.Scan(&pid))
			pids = append(pids, uint32(pid))
		}
		require.NoError(t, rows.Err())
		return pids
	}
	await := func(t *testing.T, what string, cond func() bool) {
		t.Helper()
		require.Eventually(t, cond, testsignal.Timeout, 10*time.Millisecond, what)
	}

	t.Run("leading", func(t *testing.T) {
		t.Parallel()
		url, pool, p, proxied := proxiedDB(t)

		_, _, aPID := startWith(t, proxied, cfg)
		_, bSig := launch(t, url, cfg)
		await(t, "the second sequencer waiting for the lock", func() bool { return len(lockPIDs(t, pool, false)) == 1 })

		p.SetAll(faultproxy.Both, faultproxy.Fault{Blackhole: true})
		silenced := time.Now()
		bPID := bSig.Leading.WaitOrTimeout(t)
		t.Logf("the silent leader's lock went to the waiting sequencer after %v", time.Since(silenced).Round(time.Millisecond))
		require.NotEqual(t, aPID, bPID)
		require.Equal(t, []uint32{bPID}, lockPIDs(t, pool, true))
	})

	t.Run("leading, in its first tick's transaction", func(t *testing.T) {
		t.Parallel()
		url, pool, p, proxied := proxiedDB(t)

		// Slow answers hold the session idle inside the transaction of its
		// first tick (tickAndRecord) for a while at each statement.
		p.SetAll(faultproxy.Down, faultproxy.Fault{Delay: 300 * time.Millisecond})
		_, _, aPID := startWith(t, proxied, cfg)
		_, bSig := launch(t, url, cfg)
		await(t, "the leader idle in its first tick's transaction", func() bool {
			var state string
			err := pool.QueryRow(ctx, "SELECT state FROM pg_stat_activity WHERE pid = $1", int32(aPID)).Scan(&state)
			return err == nil && state == "idle in transaction"
		})
		p.SetAll(faultproxy.Both, faultproxy.Fault{Blackhole: true})
		bPID := bSig.Leading.WaitOrTimeout(t)
		require.Equal(t, []uint32{bPID}, lockPIDs(t, pool, true))
	})

	t.Run("waiting", func(t *testing.T) {
		t.Parallel()
		url, pool, p, proxied := proxiedDB(t)

		a, _, _ := startWith(t, url, cfg)
		launch(t, proxied, cfg)
		await(t, "the proxied sequencer waiting for the lock", func() bool { return len(lockPIDs(t, pool, false)) == 1 })
		bBackend := lockPIDs(t, pool, false)[0]
		_, cSig := launch(t, url, cfg)
		await(t, "a third sequencer waiting behind it", func() bool { return len(lockPIDs(t, pool, false)) == 2 })

		// The proxied server goes silent while it waits; when the leader
		// stops, PostgreSQL grants the lock to its session first.
		p.SetAll(faultproxy.Both, faultproxy.Fault{Blackhole: true})
		a.Stop()
		await(t, "the silent session granted the lock", func() bool {
			granted := lockPIDs(t, pool, true)
			return len(granted) == 1 && granted[0] == bBackend
		})
		granted := time.Now()
		cPID := cSig.Leading.WaitOrTimeout(t)
		t.Logf("the silent session held the lock for %v", time.Since(granted).Round(time.Millisecond))
		require.Equal(t, []uint32{cPID}, lockPIDs(t, pool, true))
	})
}

// TestSilenceSpansWaits: however short SilenceTimeout is set, PostgreSQL
// does not end a sequencer's session in the waits between its ticks.
func TestSilenceSpansWaits(t *testing.T) {
	t.Parallel()
	url, _ := ticksDB(t)
	cfg := sequencer.Config{SilenceTimeout: time.Millisecond, IdleInterval: 50 * time.Millisecond}
	_, sig, _ := startWith(t, url, cfg)
	timeout := time.After(testsignal.Timeout)
	for backedOff := 0; backedOff < 3; {
		select {
		case tk := <-sig.Waited.WaitC():
			if tk.Wait >= cfg.IdleInterval {
				backedOff++
			}
		case err := <-sig.Failed.WaitC():
			t.Fatalf("the session ended between ticks: %v", err)
		case <-timeout:
			t.Fatalf("no three waits of IdleInterval within %v", testsignal.Timeout)
		}
	}
}

// proxiedDB returns a fresh database in ticks mode, a pool on it, and a
// fault proxy in front of it with the database's URL through the proxy.
func proxiedDB(t *testing.T) (url string, pool *pgxpool.Pool, p *faultproxy.Proxy, proxied string) {
	t.Helper()
	url, pool = ticksDB(t)
	p, proxied, err := faultproxy.StartFor(url)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return url, pool, p, proxied
}
