package pgtest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m)
}

// testTimeout bounds each test's database work.
const testTimeout = 30 * time.Second

func connect(t *testing.T, connString string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func databaseExists(ctx context.Context, t *testing.T, name string) bool {
	t.Helper()
	var exists bool
	err := pgtest.Admin(t).QueryRow(ctx,
		"SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	require.NoError(t, err)
	return exists
}

func TestNewDB(t *testing.T) {
	t.Parallel()

	t.Run("SchemaIsMigrated", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		conn := connect(t, pgtest.NewDB(t))

		var events, commits bool
		err := conn.QueryRow(ctx,
			"SELECT to_regclass('streamer.events') IS NOT NULL, to_regclass('streamer.commits') IS NOT NULL",
		).Scan(&events, &commits)
		require.NoError(t, err)
		require.True(t, events, "streamer.events exists")
		require.True(t, commits, "streamer.commits exists")
	})

	t.Run("InsertsAndCommitStamping", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		pool := pgtest.NewPool(t)

		var id int64
		require.NoError(t, pool.QueryRow(ctx, "SELECT streamer.publish('orders', 'hello', 'created')").Scan(&id))
		_, err := pool.Exec(ctx, "INSERT INTO streamer.events (stream, data) VALUES ('orders', 'again')")
		require.NoError(t, err)
		pgtest.Tick(t, pool) // ticks mode: the sequencer's tick numbers them

		var events, commits int
		require.NoError(t, pool.QueryRow(ctx,
			"SELECT (SELECT count(*) FROM streamer.events), (SELECT count(*) FROM streamer.commits)",
		).Scan(&events, &commits))
		require.Equal(t, 2, events)
		require.Equal(t, 2, commits, "one commit row per publishing transaction")
	})

	t.Run("ParallelTestsGetTheirOwnDatabase", func(t *testing.T) {
		t.Parallel()
		var (
			mu    sync.Mutex
			names = map[string]bool{}
		)
		// t.Run returns once the parallel subtests inside it have finished.
		t.Run("Group", func(t *testing.T) {
			for i := range 2 {
				t.Run(fmt.Sprint(i), func(t *testing.T) {
					t.Parallel()
					ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
					defer cancel()
					pool := pgtest.NewPool(t)

					_, err := pool.Exec(ctx, "SELECT streamer.publish('s', $1)", fmt.Sprint(i))
					require.NoError(t, err)
					var name string
					var events int
					require.NoError(t, pool.QueryRow(ctx,
						"SELECT current_database(), (SELECT count(*) FROM streamer.events)").Scan(&name, &events))
					require.Equal(t, 1, events, "sees only its own event")

					mu.Lock()
					names[name] = true
					mu.Unlock()
				})
			}
		})
		require.Len(t, names, 2)
	})

	t.Run("NotificationsStayInTheirDatabase", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		mine, other := connect(t, pgtest.NewDB(t)), connect(t, pgtest.NewDB(t))

		_, err := mine.Exec(ctx, "LISTEN streamer")
		require.NoError(t, err)
		// The other database's trigger notifies first, on the same channel...
		_, err = other.Exec(ctx, "SELECT streamer.publish('s', 'elsewhere')")
		require.NoError(t, err)
		_, err = mine.Exec(ctx, "SELECT pg_notify('streamer', 'mine')")
		require.NoError(t, err)

		// ...so if it crossed over, it would be the first to arrive here.
		n, err := mine.WaitForNotification(ctx)
		require.NoError(t, err)
		require.Equal(t, "mine", n.Payload)
	})

	t.Run("DroppedAtCleanup", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()

		var (
			closed, open string
			leftOpen     *pgx.Conn
		)
		t.Run("Inner", func(t *testing.T) {
			pool := pgtest.NewPool(t)
			require.NoError(t, pool.QueryRow(ctx, "SELECT current_database()").Scan(&closed))

			// Still connected when its database is dropped: WITH (FORCE)
			// disconnects it.
			var err error
			leftOpen, err = pgx.Connect(ctx, pgtest.NewDB(t))
			require.NoError(t, err)
			require.NoError(t, leftOpen.QueryRow(ctx, "SELECT current_database()").Scan(&open))
			require.True(t, databaseExists(ctx, t, closed))
			require.True(t, databaseExists(ctx, t, open))
		})
		require.False(t, databaseExists(ctx, t, closed))
		require.False(t, databaseExists(ctx, t, open))
		_, err := leftOpen.Exec(ctx, "SELECT 1")
		require.Error(t, err)
		_ = leftOpen.Close(ctx)
	})
}

func TestAdmin(t *testing.T) {
	t.Parallel()

	t.Run("TerminateBackend", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		conn := connect(t, pgtest.NewDB(t))

		var terminated bool
		require.NoError(t, pgtest.Admin(t).QueryRow(ctx,
			"SELECT pg_terminate_backend($1)", conn.PgConn().PID()).Scan(&terminated))
		require.True(t, terminated)

		_, err := conn.WaitForNotification(ctx)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "57P01", pgErr.Code, "admin_shutdown")
	})
}
