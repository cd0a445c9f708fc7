package batch

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// A database that refuses writes (a standby after a failover) fails the
// publish at once with ErrReadOnly instead of retrying into the caller's
// deadline, and the batcher publishes again once writes are allowed.
func TestReadOnlyDatabaseFailsFast(t *testing.T) {
	t.Parallel()
	b, bb := setup(t, nil)
	ctx := context.Background()
	var db string
	require.NoError(t, bb.pool.QueryRow(ctx, "SELECT current_database()").Scan(&db))
	setReadOnly := func(on bool) {
		// READ WRITE explicitly: once on, new sessions default to read-only.
		tx, err := bb.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadWrite})
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" SET default_transaction_read_only = "+map[bool]string{true: "on", false: "off"}[on])
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		bb.pool.Reset() // the setting applies to new sessions
	}
	setReadOnly(true)

	// An hour of patience: only the read-only rule can end this call early.
	pctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	_, err := b.Publish(pctx, []Event{{Stream: "s", Data: "x"}})
	require.ErrorIs(t, err, ErrReadOnly)
	require.NoError(t, pctx.Err())

	setReadOnly(false)
	ids, err := b.Publish(ctx, []Event{{Stream: "s", Data: "y"}})
	require.NoError(t, err)
	require.Len(t, ids, 1)
	require.Len(t, rows(t, bb.pool), 1, "the refused event was not stored")
}
