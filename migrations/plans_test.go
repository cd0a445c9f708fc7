package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgcluster"
	"github.com/streamer-dev/streamer/internal/testenv"
	"github.com/streamer-dev/streamer/migrations"
)

// TestTickKeepsItsPlans: the statements a tick runs are planned once per
// session, not at every tick (009_cheaper_tick.sql: planned at every call,
// the candidates' statement cost a tick more than it ran). Counted by
// pg_stat_statements with track_planning, on a cluster of the test's own
// that loads it, over ticks that number something and ticks that find
// nothing.
func TestTickKeepsItsPlans(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, err := pgcluster.Start(ctx, "shared_preload_libraries = 'pg_stat_statements'")
	var unavailable *pgcluster.UnavailableError
	if errors.As(err, &unavailable) {
		testenv.Unavailable(t, "no throwaway cluster with pg_stat_statements: %v", err)
	}
	require.NoError(t, err)
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = cluster.Stop(stopCtx)
	})
	conn, err := pgx.Connect(ctx, cluster.ConnString())
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.NoError(t, migrations.Migrate(ctx, conn))
	require.NoError(t, migrations.SetOrdering(ctx, conn, migrations.Ticks))
	for _, sql := range []string{
		"CREATE EXTENSION pg_stat_statements",
		"SET pg_stat_statements.track = 'all'", // this session's nested statements too
		"SET pg_stat_statements.track_planning = on",
		"SELECT pg_stat_statements_reset()",
	} {
		_, err := conn.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}

	const ticks = 20
	for i := range ticks {
		for j := range 3 {
			_, err := conn.Exec(ctx, "INSERT INTO streamer.events (stream, data) VALUES ('s', $1)", fmt.Sprint(i, j))
			require.NoError(t, err)
		}
		var numbered int
		require.NoError(t, conn.QueryRow(ctx, "SELECT streamer.tick()").Scan(&numbered))
		require.Equal(t, 3, numbered)
		require.NoError(t, conn.QueryRow(ctx, "SELECT streamer.tick()").Scan(&numbered))
		require.Zero(t, numbered, "a tick that finds nothing")
	}

	rows, err := conn.Query(ctx, `
SELECT query, calls, plans FROM pg_stat_statements
WHERE toplevel = false AND calls >= $1`, ticks)
	require.NoError(t, err)
	type stmt struct {
		Query        string
		Calls, Plans int64
	}
	nested, err := pgx.CollectRows(rows, pgx.RowToStructByPos[stmt])
	require.NoError(t, err)
	require.NotEmpty(t, nested, "pg_stat_statements saw no statement inside the ticks")
	for _, s := range nested {
		t.Logf("%d calls, %d plans: %.80s", s.Calls, s.Plans, s.Query)
		// Once per session, and once more if autovacuum's statistics
		// invalidate a plan meanwhile.
		require.LessOrEqual(t, s.Plans, int64(2), "planned at every call: %s", s.Query)
	}
}
