package retention

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
)

// publish commits one transaction that inserts the given data on stream s
// and, in ticks mode (STREAMER_TEST_ORDERING=ticks), records a tick, as the
// sequencer would a few milliseconds later, so that it has its commit time.
func publish(t testing.TB, pool *pgxpool.Pool, s string, data ...string) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	for _, d := range data {
		_, err := tx.Exec(ctx, "SELECT streamer.publish($1, $2)", s, d)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit(ctx))
	pgtest.Tick(t, pool)
}

// dbNow is the database's clock, the one committed_at is read from.
func dbNow(t testing.TB, pool *pgxpool.Pool) time.Time {
	t.Helper()
	var now time.Time
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT clock_timestamp()").Scan(&now))
	return now
}

// pruneBefore runs streamer.prune with older_than chosen so that its cutoff
// is exactly cutoff: now() is the same inside the function and in the call.
func pruneBefore(t testing.TB, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, cutoff time.Time) int64 {
	t.Helper()
	var n int64
	require.NoError(t, q.QueryRow(context.Background(),
		"SELECT streamer.prune(now() - $1::timestamptz)", cutoff).Scan(&n))
	return n
}

func dataLeft(t testing.TB, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT data FROM streamer.events ORDER BY id")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return got
}

func readState(t testing.TB, pool *pgxpool.Pool) State {
	t.Helper()
	s, err := ReadState(context.Background(), pool)
	require.NoError(t, err)
	return s
}

// TestPruneExact: prune removes exactly the events committed before the
// cutoff, returns their number and records the newest of them.
func TestPruneExact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)

	publish(t, pool, "a", "old1")
	publish(t, pool, "b", "old2", "old3", "old4")
	publish(t, pool, "a", "old5")
	cutoff := dbNow(t, pool)
	publish(t, pool, "a", "new1", "new2")
	publish(t, pool, "b", "new3")

	var lastOldID int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT id FROM streamer.events WHERE data = 'old5'").Scan(&lastOldID))
	require.Equal(t, State{OldestSeq: 1, OldestID: 1, HasOldest: true}, readState(t, pool))

	require.Equal(t, int64(5), pruneBefore(t, pool, cutoff))
	require.Equal(t, []string{"new1", "new2", "new3"}, dataLeft(t, pool))
	st := readState(t, pool)
	require.Equal(t, State{PrunedSeq: 3, PrunedID: lastOldID, OldestSeq: 4, OldestID: lastOldID + 1, HasOldest: true}, st)

	var commits []int64
	rows, err := pool.Query(ctx, "SELECT seq FROM streamer.commits ORDER BY seq")
	require.NoError(t, err)
	commits, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, []int64{4, 5}, commits, "the pruned commits go with their events")

	t.Run("again removes nothing", func(t *testing.T) {
		require.Zero(t, pruneBefore(t, pool, cutoff))
		require.Equal(t, st, readState(t, pool))
	})

	t.Run("everything keeps the newest commit row", func(t *testing.T) {
		var head string
		require.NoError(t, pool.QueryRow(ctx, "SELECT streamer.head()").Scan(&head))
		var n int64
		require.NoError(t, pool.QueryRow(ctx, "SELECT streamer.prune('0')").Scan(&n))
		require.Equal(t, int64(3), n)
		require.Empty(t, dataLeft(t, pool))
		var after string
		require.NoError(t, pool.QueryRow(ctx, "SELECT streamer.head()").Scan(&after))
		require.Equal(t, head, after, "head() must not go back when everything is pruned")
		st := readState(t, pool)
		require.Equal(t, int64(5), st.PrunedSeq)
		require.False(t, st.HasOldest)
		var total int64
		require.NoError(t, pool.QueryRow(ctx, "SELECT events_total FROM streamer.pruned").Scan(&total))
		require.Equal(t, int64(8), total)
	})
}

// TestPruneOutOfOrder: a transaction that inserted before the prune point
// but commits after it is retained; one that inserted later but committed
// before is pruned.
func TestPruneOutOfOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)

	early, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = early.Rollback(ctx) }()
	_, err = early.Exec(ctx, "SELECT streamer.publish('a', 'inserted first, committed last')")
	require.NoError(t, err)

	publish(t, pool, "a", "inserted second, committed first")
	cutoff := dbNow(t, pool)
	require.NoError(t, early.Commit(ctx))

	require.Equal(t, int64(1), pruneBefore(t, pool, cutoff))
	require.Equal(t, []string{"inserted first, committed last"}, dataLeft(t, pool))
}

// TestPrunePrefix: prune removes a prefix of the commit order, stopping at
// the first commit that is not old enough, even if later ones look older
// (a clock that stepped back), so that the horizon covers only pruned events.
func TestPrunePrefix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	publish(t, pool, "a", "1")
	publish(t, pool, "a", "2")
	publish(t, pool, "a", "3")
	_, err := pool.Exec(ctx, `UPDATE streamer.commits SET committed_at = committed_at - interval '1 hour' WHERE seq IN (1, 3)`)
	require.NoError(t, err)

	var n int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT streamer.prune('30 minutes')").Scan(&n))
	require.Equal(t, int64(1), n)
	require.Equal(t, []string{"2", "3"}, dataLeft(t, pool))
	require.Equal(t, State{PrunedSeq: 1, PrunedID: 1, OldestSeq: 2, OldestID: 2, HasOldest: true}, readState(t, pool))
}

// TestPruneHorizonSkipsEmptyCommits: the horizon is the last event of the
// newest pruned commit that had events, also when the newest chosen commit
// has none (its events deleted by hand), and a prune that removes nothing
// leaves it alone.
func TestPruneHorizonSkipsEmptyCommits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	publish(t, pool, "a", "1", "2")
	publish(t, pool, "a", "3")
	_, err := pool.Exec(ctx, "DELETE FROM streamer.events WHERE data = '3'")
	require.NoError(t, err)

	var n int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT streamer.prune('0')").Scan(&n))
	require.Equal(t, int64(2), n)
	want := State{PrunedSeq: 1, PrunedID: 2}
	require.Equal(t, want, readState(t, pool))

	require.NoError(t, pool.QueryRow(ctx, "SELECT streamer.prune('0')").Scan(&n))
	require.Zero(t, n)
	require.Equal(t, want, readState(t, pool))
}

// TestPruneConcurrent: publishers and two pruners at once; the pruners
// remove every old event once between them and nothing new.
func TestPruneConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)

	const oldTx, newTx, publishers = 300, 100, 4
	for i := range oldTx {
		publish(t, pool, "old", "o", strings.Repeat("o", i%3))
	}
	cutoff := dbNow(t, pool)

	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for range newTx {
				_, err := pool.Exec(ctx, "SELECT streamer.publish('new', 'n')")
				if !assertNoError(t, err) {
					return
				}
			}
		})
	}
	removed := make([]int64, 2)
	for i := range removed {
		wg.Go(func() {
			// Small steps in separate transactions, so the two interleave.
			for {
				var events int64
				var more bool
				err := pool.QueryRow(ctx, "SELECT pruned_events, more FROM streamer.prune_step($1, 7)", cutoff).Scan(&events, &more)
				if !assertNoError(t, err) {
					return
				}
				removed[i] += events
				if !more {
					return
				}
			}
		})
	}
	wg.Wait()
	// A last prune after everyone is done finds nothing more to remove.
	require.Zero(t, pruneBefore(t, pool, cutoff))
	require.Equal(t, int64(2*oldTx), removed[0]+removed[1])

	var olds, news int
	require.NoError(t, pool.QueryRow(ctx,
		"SELECT count(*) FILTER (WHERE stream = 'old'), count(*) FILTER (WHERE stream = 'new') FROM streamer.events").
		Scan(&olds, &news))
	require.Zero(t, olds)
	require.Equal(t, publishers*newTx, news)
}

// assertNoError reports err from a goroutine other than the test's.
func assertNoError(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}

// TestPruneRefuses: arguments that cannot be meant are errors.
func TestPruneRefuses(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	for _, tc := range []struct{ name, sql string }{
		{"negative interval", "SELECT streamer.prune('-1 hour')"},
		{"NULL interval", "SELECT streamer.prune(NULL)"},
		{"zero commits", "SELECT * FROM streamer.prune_step(now(), 0)"},
		{"NULL cutoff", "SELECT * FROM streamer.prune_step(NULL, 10)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pool.Exec(context.Background(), tc.sql)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			require.Equal(t, "22023", pgErr.Code, pgErr.Message)
		})
	}
}

// TestPruneStepPlan checks, with auto_explain on the function's own
// statements, that a step reads through indexes only: its cost depends on
// the step's size, not on the tables'. Generic plans are forced, since
// PL/pgSQL switches to them after a few calls.
func TestPruneStepPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	pgtest.WriteHistory(t, pool, pgtest.History{Commits: 20000, PerCommit: 2})

	cfg, err := pgx.ParseConfig(pool.Config().ConnConfig.ConnString())
	require.NoError(t, err)
	var (
		mu    sync.Mutex
		plans []string
	)
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		defer mu.Unlock()
		plans = append(plans, n.Message)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
		LOAD 'auto_explain';
		SET auto_explain.log_min_duration = 0;
		SET auto_explain.log_nested_statements = on;
		SET auto_explain.log_level = notice;
		SET plan_cache_mode = force_generic_plan`)
	require.NoError(t, err)

	for range 3 {
		var events int64
		require.NoError(t, conn.QueryRow(ctx,
			"SELECT pruned_events FROM streamer.prune_step(now() + interval '1 hour', 100)").Scan(&events))
		require.Equal(t, int64(200), events)
	}

	mu.Lock()
	defer mu.Unlock()
	text := strings.Join(plans, "\n")
	t.Log(text)
	// The prefix is read from the horizon, not from the first entry of
	// commits_pkey (which would step over every entry earlier steps left),
	// and the chosen commits rows are deleted as one range, not by one
	// descent per seq.
	for _, want := range []struct{ statement, index, cond string }{
		{"DELETE FROM streamer.events", "events_txid_id_idx", ""},
		{"DELETE FROM streamer.commits", "commits_pkey", "Index Cond: ((seq >= ($"},
		{"ORDER BY c.seq LIMIT max_commits", "commits_pkey", "Index Cond: (seq >= $"},
		{"SELECT max(c.seq)", "commits_pkey", ""},
		{"SELECT max(e.id)", "events_txid_id_idx", ""},
	} {
		var found bool
		for _, p := range plans {
			if !strings.Contains(p, want.statement) {
				continue
			}
			found = true
			require.Contains(t, p, want.index, p)
			require.Contains(t, p, want.cond, p)
			require.NotContains(t, p, "Seq Scan", p)
		}
		require.True(t, found, "no plan of %q among:\n%s", want.statement, text)
	}
}
