package pgtest

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/migrations"
)

// HoldCommitLock takes the commit-order lock that every publishing
// transaction takes at COMMIT (streamer.stamp_commit), so that every such
// COMMIT on pool's database waits until release is called (or the test
// ends). release is idempotent.
func HoldCommitLock(t testing.TB, pool *pgxpool.Pool) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", int32(migrations.LockClass), int32(migrations.CommitLockID))
	require.NoError(t, err)
	var once sync.Once
	release = func() {
		once.Do(func() {
			_, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1, $2)", int32(migrations.LockClass), int32(migrations.CommitLockID))
			require.NoError(t, err)
			conn.Release()
		})
	}
	t.Cleanup(release)
	return release
}
