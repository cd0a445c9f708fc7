package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamer-dev/streamer/internal/pgcluster"
	"github.com/streamer-dev/streamer/internal/testenv"
	"github.com/streamer-dev/streamer/migrations"
)

// cleanupTimeout bounds each DROP DATABASE and each teardown step.
const cleanupTimeout = 30 * time.Second

// The binary's one server, found by the first test that asks.
var (
	sharedOnce sync.Once
	sharedMu   sync.Mutex // guards shared and sharedErr for Main
	shared     *server
	sharedErr  error
)

// Main is every package's TestMain body: it runs the tests, tears down the
// server (or template) this binary set up, checks for leaked goroutines
// after a successful run, and exits with the tests' status.
func Main(m *testing.M) {
	// Goroutines running before any test (library init) are not leaks.
	ignores := []goleak.Option{goleak.IgnoreCurrent()}

	code := m.Run()

	sharedMu.Lock()
	s := shared
	sharedMu.Unlock()
	if s != nil {
		ignores = append(ignores, s.backend.leakIgnores...)
		if err := s.close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: tearing down %s: %v\n", s.backend.name, err)
			if code == 0 {
				code = 1
			}
		}
	}

	if code == 0 {
		if err := goleak.Find(append(ignores, libraryLeakIgnores...)...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// libraryLeakIgnores are goroutines that libraries leave behind for a moment
// after everything has been closed.
var libraryLeakIgnores = []goleak.Option{
	// pgxpool's delayed health-check trigger (a time.AfterFunc) may fire just
	// after Close; it returns at once. This is what is left of
	// https://github.com/jackc/pgx/issues/1641, which River also ignores.
	//
	// River also ignores (*Pool).backgroundHealthCheck. In pgx v5.12 it
	// returns as soon as the pool is closed, so we do not: a pool nobody
	// closed is reported here as that goroutine.
	goleak.IgnoreAnyFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).triggerHealthCheck.func1"),
}

// NewDB returns the connection string of a new database for this test,
// cloned from the binary's migrated template. The database is dropped WITH
// (FORCE) at t.Cleanup.
func NewDB(t testing.TB) string {
	t.Helper()
	s := get(t)

	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	name, err := s.createDB(ctx)
	require.NoError(t, err, "pgtest")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		assert.NoError(t, s.dropDB(ctx, name), "pgtest")
	})

	connString, err := withDatabase(s.backend.connString, name)
	require.NoError(t, err, "pgtest")
	return connString
}

// NewPool is [NewDB] plus a pool on the new database, closed at t.Cleanup
// (before the database is dropped).
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	connString := NewDB(t)

	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, connString)
	require.NoError(t, err, "pgtest: open pool")
	t.Cleanup(pool.Close)
	return pool
}

// Admin returns a pool connected to the maintenance database of the server
// the test databases live on, for pg_terminate_backend and other server-wide
// statements. It is shared by the whole test binary: do not close it.
func Admin(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return get(t).admin
}

// get returns the binary's server, setting it up on the first call. When no
// server can be had it skips t, or fails t under CI=true.
func get(t testing.TB) *server {
	t.Helper()
	sharedOnce.Do(func() {
		s, err := setUp()
		sharedMu.Lock()
		shared, sharedErr = s, err
		sharedMu.Unlock()
	})

	sharedMu.Lock()
	s, err := shared, sharedErr
	sharedMu.Unlock()
	if err == nil {
		return s
	}
	var unavailable *pgcluster.UnavailableError
	if errors.As(err, &unavailable) {
		testenv.Unavailable(t, "pgtest: no PostgreSQL server to test against: %v", err)
	}
	t.Fatalf("pgtest: %v", err)
	return nil
}

// OrderingEnv names the environment variable that selects the ordering mode
// of every test database (migrations.Ordering: trigger, the default, or
// ticks), so that the delivery tests run in each mode.
const OrderingEnv = "STREAMER_TEST_ORDERING"

// Ordering returns the ordering mode test databases are in; an unknown
// name panics, so that a typo never runs the tests in the wrong mode.
func Ordering() migrations.Ordering {
	o, err := migrations.ParseOrdering(os.Getenv(OrderingEnv))
	if err != nil {
		panic(fmt.Sprintf("pgtest: %s: %v", OrderingEnv, err))
	}
	if o == "" {
		return migrations.Trigger
	}
	return o
}

// SkipUnlessTrigger skips tb when test databases are in another ordering
// mode than trigger: for a test of what only the trigger mode does (its
// commit-order lock at COMMIT), which the trigger-mode pass covers. what
// says what the test relies on.
func SkipUnlessTrigger(tb testing.TB, what string) {
	tb.Helper()
	if o := Ordering(); o != migrations.Trigger {
		tb.Skipf("relies on %s, which %s-mode publishers do not do; the trigger-mode pass covers it", what, o)
	}
}

// Tick numbers every committed event now: in the ticks ordering mode it
// records a tick (streamer.tick(), as a server's sequencer would a few
// milliseconds later); in trigger mode events are numbered at COMMIT and it
// does nothing. Tests that read positions or commits rows from the
// database, or wake a dispatcher by hand, call it first. READ WRITE: a
// fault test reads its truth while the database's default is read-only.
func Tick(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	_, err := pool.Exec(context.Background(), "BEGIN READ WRITE; SELECT streamer.tick(); COMMIT")
	require.NoError(t, err)
}

// Querier is what DataAfter reads through: a connection, a pool or a
// transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// DataAfter returns the data of every numbered event after a head() token,
// in delivery order (commit number, then id), read straight from the
// tables: the truth a delivery test compares with.
func DataAfter(t testing.TB, q Querier, token string) []string {
	t.Helper()
	rows, err := q.Query(context.Background(), `SELECT e.data FROM streamer.commits c JOIN streamer.events e USING (txid)
		WHERE c.seq > $1::bigint ORDER BY c.seq, e.id`, token)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return got
}
