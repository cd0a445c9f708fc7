package pgtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/migrations"
)

// TestWriteHistory: the history is numbered as asked, committed Age ago,
// and the database goes on numbering after it in either ordering mode,
// each event once: the triggers are back as they were.
func TestWriteHistory(t *testing.T) {
	t.Parallel()
	for _, mode := range []migrations.Ordering{migrations.Trigger, migrations.Ticks} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			testWriteHistory(t, mode)
		})
	}
}

func testWriteHistory(t *testing.T, mode migrations.Ordering) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	_, err := pool.Exec(ctx, "SELECT streamer.set_ordering($1)", string(mode))
	require.NoError(t, err)
	pgtest.WriteHistory(t, pool, pgtest.History{Commits: 3, PerCommit: 2, Streams: 2, Prefix: "p", Data: "d", Age: time.Hour})

	type event struct {
		Seq    int64
		ID     int64
		Stream string
		Data   string
		Old    bool
	}
	rows, err := pool.Query(ctx, `SELECT c.seq, e.id, e.stream, e.data, c.committed_at < now() - interval '59 minutes'
		FROM streamer.commits c JOIN streamer.events e USING (txid) ORDER BY c.seq, e.id`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[event])
	require.NoError(t, err)
	require.Equal(t, []event{
		{1, 1, "p1", "d", true}, {1, 2, "p0", "d", true},
		{2, 3, "p1", "d", true}, {2, 4, "p0", "d", true},
		{3, 5, "p1", "d", true}, {3, 6, "p0", "d", true},
	}, got)

	_, err = pool.Exec(ctx, "SELECT streamer.publish('s', 'after')")
	require.NoError(t, err)
	pgtest.Tick(t, pool)
	require.Equal(t, []string{"after"}, pgtest.DataAfter(t, pool, "3"))
}
