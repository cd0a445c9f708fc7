package dispatch

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/pgtest"
)

// BenchmarkGapCheck is what gap detection costs a replay: a read of a full
// page (500 events of 5,000, on every stream) with the horizon columns and
// without them (the query as it was before gap detection), and the
// single-row horizon read that guards each page-cache hit. On the shared
// 2-core machine, six alternating runs of 300 reads each: 1.18-1.58 ms per
// page with the horizon against 1.09-1.81 ms without (sums 8.35 and 8.27
// ms: within noise), 25-60 µs for the horizon alone. A first version that
// joined the horizon as a CTE cost 10-25% more per page (the planner put a
// Materialize over the events and planned longer); the InitPlans leave the
// plan of the page as it was.
func BenchmarkGapCheck(b *testing.B) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDB(b))
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, `SELECT streamer.publish('s' || (i % 10), repeat('x', 100)) FROM generate_series(1, 5000) i`)
	require.NoError(b, err)
	// One commit per 10 events, so a page spans 50 commits.
	for range 99 {
		_, err = pool.Exec(ctx, `SELECT streamer.publish('s' || (i % 10), repeat('x', 100)) FROM generate_series(1, 10) i`)
		require.NoError(b, err)
	}
	_, err = pool.Exec(ctx, `ANALYZE streamer.events; ANALYZE streamer.commits`)
	require.NoError(b, err)

	without := strings.Replace(readQuery,
		"SELECT (SELECT seq FROM streamer.pruned), (SELECT id FROM streamer.pruned),\n    head.seq", "SELECT head.seq", 1)
	require.NotEqual(b, readQuery, without)
	from := cursor.After(1)
	for _, bc := range []struct {
		name, sql string
		args      []any
	}{
		{"page without horizon", without, []any{from.Seq + 1, int64(0), 500}},
		{"page with horizon", readQuery, []any{from.Seq + 1, int64(0), 500}},
		{"horizon alone", horizonQuery, nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				rows, err := pool.Query(ctx, bc.sql, bc.args...)
				require.NoError(b, err)
				n := 0
				for rows.Next() {
					n++
				}
				require.NoError(b, rows.Err())
				require.Positive(b, n)
			}
		})
	}
}
