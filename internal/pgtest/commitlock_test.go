package pgtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/migrations"
)

// TestHoldCommitLock shows that the Go constants name the lock the SQL
// takes at COMMIT: while it is held, a publishing COMMIT waits on exactly
// that advisory lock, and goes through once it is released.
func TestHoldCommitLock(t *testing.T) {
	t.Parallel()
	pgtest.SkipUnlessTrigger(t, "the commit-order lock taken at COMMIT")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	pool := pgtest.NewPool(t)

	var src string
	require.NoError(t, pool.QueryRow(ctx,
		"SELECT prosrc FROM pg_proc WHERE oid = 'streamer.stamp_commit'::regproc").Scan(&src))
	require.Contains(t, src, fmt.Sprintf("pg_advisory_xact_lock(%d, %d)", migrations.LockClass, migrations.CommitLockID))

	release := pgtest.HoldCommitLock(t, pool)
	done := make(chan error, 1)
	go func() {
		_, err := pool.Exec(ctx, "SELECT streamer.publish('s', 'x')")
		done <- err
	}()

	// Wait until the COMMIT waits on the lock, polling pg_locks.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for waiting := false; !waiting; {
		select {
		case err := <-done:
			t.Fatalf("the COMMIT did not wait for the held commit lock (err: %v)", err)
		case <-ctx.Done():
			t.Fatal("no COMMIT waited on the commit lock in time")
		case <-tick.C:
		}
		require.NoError(t, pool.QueryRow(ctx, `
			SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
				AND classid = $1 AND objid = $2 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`,
			migrations.LockClass, migrations.CommitLockID).Scan(&waiting))
	}

	release()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("the COMMIT did not go through after release")
	}
}
