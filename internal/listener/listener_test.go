package listener

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/startstop/startstoptest"
	"github.com/streamer-dev/streamer/internal/testsignal"
)

// countingWaker counts Wake calls and keeps the payloads handed to
// Notified. Like the dispatcher's, neither blocks.
type countingWaker struct {
	n        atomic.Int64
	mu       sync.Mutex
	payloads []string
	pids     []uint32
}

func (w *countingWaker) Wake() { w.n.Add(1) }

func (w *countingWaker) Notified(pid uint32, payload string) {
	w.mu.Lock()
	w.payloads = append(w.payloads, payload)
	w.pids = append(w.pids, pid)
	w.mu.Unlock()
}

// senders returns the distinct PIDs handed to Notified so far.
func (w *countingWaker) senders() []uint32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Compact(slices.Sorted(slices.Values(w.pids)))
}

func (w *countingWaker) notified() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.payloads)
}

var _ Waker = (*countingWaker)(nil)

// testBundle holds what a test needs next to the Listener under test.
type testBundle struct {
	cfg     Config        // as given to New
	pool    *pgxpool.Pool // on the listener's own database: NOTIFY, publish, pg_stat_activity
	signals *TestSignals
	waker   *countingWaker
}

// setup returns a Listener (not started) on a fresh database, stopped at
// cleanup. configure, if non-nil, may adjust the Config first.
func setup(t *testing.T, configure func(*Config)) (*Listener, *testBundle) {
	t.Helper()

	pool := pgtest.NewPool(t)
	signals := &TestSignals{}
	signals.Init()
	bundle := &testBundle{
		pool:    pool,
		signals: signals,
		waker:   &countingWaker{},
	}
	bundle.cfg = Config{
		DatabaseURL: pool.Config().ConnString(),
		Logger:      zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel),
		Waker:       bundle.waker,
		TestSignals: signals,
	}
	if configure != nil {
		configure(&bundle.cfg)
	}
	l := New(bundle.cfg)
	t.Cleanup(l.Stop)
	return l, bundle
}

// start starts l and consumes the Listening and wake-all signals Start
// raises, returning the backend PID.
func start(t *testing.T, l *Listener, bundle *testBundle) uint32 {
	t.Helper()
	require.NoError(t, l.Start(context.Background()))
	pid := bundle.signals.Listening.WaitOrTimeout(t)
	require.NotZero(t, pid)
	require.Equal(t, 0, bundle.signals.Woke.WaitOrTimeout(t), "Start wakes once after LISTEN")
	require.True(t, l.Connected())
	return pid
}

func notify(t *testing.T, bundle *testBundle) {
	t.Helper()
	_, err := bundle.pool.Exec(context.Background(), "SELECT pg_notify($1, '')", bundle.cfg.withDefaults().Channel)
	require.NoError(t, err)
}

// awaitNotifications waits until the listener has read n notifications
// and returns in how many wakes (Woke signals) they came; every
// notification must be read exactly once.
func awaitNotifications(t *testing.T, bundle *testBundle, n int) (wakes int) {
	t.Helper()
	seen := 0
	for seen < n {
		got := bundle.signals.Woke.WaitOrTimeout(t)
		require.Positive(t, got)
		seen += got
		wakes++
	}
	require.Equal(t, n, seen, "every notification is read exactly once")
	return wakes
}

// requireBackendGone waits for the server to drop backend pid. The server
// ends a backend asynchronously after the client's Terminate, so this polls.
func requireBackendGone(t *testing.T, bundle *testBundle, pid uint32) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		err := bundle.pool.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE pid = $1", int32(pid)).Scan(&n)
		return err == nil && n == 0
	}, testsignal.Timeout, 10*time.Millisecond, "backend %d is still there", pid)
}

// errInjected is the failure the wait override injects.
var errInjected = errors.New("injected wait failure")

// overrideWait replaces l's wait step with wrap, which receives the real one.
// It must be called before Start.
func overrideWait(l *Listener, wrap func(ctx context.Context, conn *pgx.Conn, real waitFunc) (*pgconn.Notification, error)) {
	real := l.waitForNotification
	l.waitForNotification = func(ctx context.Context, conn *pgx.Conn) (*pgconn.Notification, error) {
		return wrap(ctx, conn, real)
	}
}

// failOnce makes the first wait after armed is set return errInjected.
func failOnce(l *Listener, armed *atomic.Bool) {
	overrideWait(l, func(ctx context.Context, conn *pgx.Conn, real waitFunc) (*pgconn.Notification, error) {
		if armed.CompareAndSwap(true, false) {
			return nil, errInjected
		}
		return real(ctx, conn)
	})
}

// failFirstDrain makes the first wait that follows a received notification,
// which is the first drain read, return errInjected.
func failFirstDrain(l *Listener) {
	var afterNotification, failed atomic.Bool
	overrideWait(l, func(ctx context.Context, conn *pgx.Conn, real waitFunc) (*pgconn.Notification, error) {
		if afterNotification.Load() && failed.CompareAndSwap(false, true) {
			return nil, errInjected
		}
		n, err := real(ctx, conn)
		afterNotification.Store(err == nil)
		return n, err
	})
}

// withDatabase returns connString with its database replaced by db.
func withDatabase(t *testing.T, connString, db string) string {
	t.Helper()
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		require.NoError(t, err)
		u.Path = "/" + db
		return u.String()
	}
	return connString + " dbname=" + db
}

func TestStartFailsFast(t *testing.T) {
	t.Parallel()

	// startErr starts a listener for dsn with a generous context and returns
	// the error, checking that it came from the DSN and not from the context
	// running out, and that the listener is left stopped and stoppable.
	startErr := func(t *testing.T, cfg Config) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		l := New(cfg)
		err := l.Start(ctx)
		require.Error(t, err)
		require.NoError(t, ctx.Err(), "Start must fail on its own, not by running out of time")
		require.False(t, l.Connected())
		l.Stop()
		l.Stop()
		return err
	}

	t.Run("UnparseableURL", func(t *testing.T) {
		t.Parallel()

		err := startErr(t, Config{DatabaseURL: "postgres://u@localhost:notaport/db", Waker: &countingWaker{}})
		require.ErrorContains(t, err, "listener: parse database URL")
		var parseErr *pgconn.ParseConfigError
		require.ErrorAs(t, err, &parseErr)
	})

	t.Run("NoServer", func(t *testing.T) {
		t.Parallel()

		err := startErr(t, Config{
			DatabaseURL: "postgres://postgres@/postgres?host=/nonexistent-streamer-socket-dir",
			Waker:       &countingWaker{},
		})
		require.ErrorContains(t, err, "listener: connect")
		var connectErr *pgconn.ConnectError
		require.ErrorAs(t, err, &connectErr)
	})

	t.Run("MissingDatabase", func(t *testing.T) {
		t.Parallel()

		_, bundle := setup(t, nil)
		err := startErr(t, Config{
			DatabaseURL: withDatabase(t, bundle.cfg.DatabaseURL, "streamer_no_such_database"),
			Waker:       bundle.waker,
		})
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "3D000", pgErr.Code) // invalid_catalog_name
		require.Zero(t, bundle.waker.n.Load(), "no wake without LISTEN")
	})

	t.Run("NilWaker", func(t *testing.T) {
		t.Parallel()

		err := startErr(t, Config{DatabaseURL: "postgres://u@localhost/db"})
		require.ErrorContains(t, err, "Waker is nil")
	})
}

func TestListener(t *testing.T) {
	t.Parallel()

	t.Run("NotificationWakes", func(t *testing.T) {
		t.Parallel()

		l, bundle := setup(t, nil)
		require.False(t, l.Connected())
		start(t, l, bundle)

		notify(t, bundle)
		require.Equal(t, 1, bundle.signals.Woke.WaitOrTimeout(t))
		require.EqualValues(t, 2, bundle.waker.n.Load(), "wake-all after LISTEN, then one for the NOTIFY")

		notify(t, bundle)
		require.Equal(t, 1, bundle.signals.Woke.WaitOrTimeout(t))
		bundle.signals.BackoffError.RequireEmpty(t)
	})

	t.Run("PublishTriggerWakes", func(t *testing.T) {
		t.Parallel()
		pgtest.SkipUnlessTrigger(t, "the statement-level NOTIFY trigger (ticks mode NOTIFYs per tick)")

		l, bundle := setup(t, nil)
		start(t, l, bundle)

		// The schema's statement-level trigger does the NOTIFY.
		_, err := bundle.pool.Exec(context.Background(),
			"INSERT INTO streamer.events (stream, data) VALUES ('room', 'a'), ('room', 'b')")
		require.NoError(t, err)
		require.Equal(t, 1, bundle.signals.Woke.WaitOrTimeout(t), "one NOTIFY per statement")

		var id int64
		require.NoError(t, bundle.pool.QueryRow(context.Background(),
			"SELECT streamer.publish('room', 'c')").Scan(&id))
		require.Equal(t, 1, bundle.signals.Woke.WaitOrTimeout(t))
	})

	t.Run("ChannelNameIsQuoted", func(t *testing.T) {
		t.Parallel()

		l, bundle := setup(t, func(cfg *Config) { cfg.Channel = `Mixed.Case "chan"` })
		start(t, l, bundle)

		notify(t, bundle)
		require.Equal(t, 1, bundle.signals.Woke.WaitOrTimeout(t))
	})

	t.Run("BurstCoalesces", func(t *testing.T) {
		t.Parallel()

		l, bundle := setup(t, nil)
		start(t, l, bundle)
		wakesBefore := bundle.waker.n.Load()

		// Empty payloads, as trigger mode's publishers send, each from a
		// transaction of its own (PostgreSQL folds identical notifications
		// of one transaction into one).
		const notifications = 1000
		_, err := bundle.pool.Exec(context.Background(), fmt.Sprintf(`
			DO $$ BEGIN
				FOR i IN 1..%d LOOP PERFORM pg_notify('%s', ''); COMMIT; END LOOP;
			END $$`, notifications, DefaultChannel), pgx.QueryExecModeSimpleProtocol)
		require.NoError(t, err)

		wakes := awaitNotifications(t, bundle, notifications)
		require.Less(t, wakes, notifications, "a burst must coalesce")
		// Each drained burst wakes at its first notification and once more
		// at its end.
		require.LessOrEqual(t, bundle.waker.n.Load()-wakesBefore, int64(2*wakes))
		require.Empty(t, bundle.waker.notified(), "an empty payload is a wake")
		t.Logf("%d notifications -> %d wakes", notifications, wakes)

		// Nothing of the burst is left over: the next NOTIFY is counted alone.
		notify(t, bundle)
		require.Equal(t, 1, bundle.signals.Woke.WaitOrTimeout(t))
	})

	t.Run("PayloadsHandedOverInOrder", func(t *testing.T) {
		t.Parallel()

		l, bundle := setup(t, nil)
		start(t, l, bundle)
		wakesBefore := bundle.waker.n.Load()

		// Distinct payloads in one transaction: delivered at COMMIT, in order.
		const notifications = 1000
		conn, err := bundle.pool.Acquire(context.Background())
		require.NoError(t, err)
		defer conn.Release()
		_, err = conn.Exec(context.Background(),
			"SELECT pg_notify($1, g::text) FROM generate_series(1, $2::int) g ORDER BY g",
			DefaultChannel, notifications)
		require.NoError(t, err)

		awaitNotifications(t, bundle, notifications)
		want := make([]string, notifications)
		for i := range want {
			want[i] = strconv.Itoa(i + 1)
		}
		require.Equal(t, want, bundle.waker.notified(), "each payload handed over once, in order")
		require.Equal(t, []uint32{conn.Conn().PgConn().PID()}, bundle.waker.senders(), "with the sender's PID")
		require.Equal(t, wakesBefore, bundle.waker.n.Load(), "a payload is not also a wake")
	})

	t.Run("ReconnectsAfterTerminate", func(t *testing.T) {
		t.Parallel()

		l, bundle := setup(t, nil)
		pid := start(t, l, bundle)
		ctx := context.Background()

		// The listener's backend is identifiable in pg_stat_activity.
		var found int32
		require.NoError(t, bundle.pool.QueryRow(ctx, `
			SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1 AND query LIKE 'LISTEN%'`,
			ApplicationName).Scan(&found))
		require.EqualValues(t, pid, found)

		var terminated bool
		require.NoError(t, pgtest.Admin(t).QueryRow(ctx, "SELECT pg_terminate_backend($1)", int32(pid)).Scan(&terminated))
		require.True(t, terminated)

		err := bundle.signals.BackoffError.WaitOrTimeout(t)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "57P01", pgErr.Code) // admin_shutdown

		newPID := bundle.signals.Listening.WaitOrTimeout(t)
		require.NotEqual(t, pid, newPID)
		require.True(t, l.Connected())
		require.Equal(t, 0, bundle.signals.Woke.WaitOrTimeout(t), "wake-all after reconnect")

		notify(t, bundle)
		require.Equal(t, 1, bundle.signals.Woke.WaitOrTimeout(t))
		bundle.signals.BackoffError.RequireEmpty(t)
	})

	t.Run("InjectedWaitError", func(t *testing.T) {
		t.Parallel()

		l, bundle := setup(t, nil)
		var armed atomic.Bool
		armed.Store(true) // the goroutine's first wait fails
		failOnce(l, &armed)
		// Not start(): Connected may already be false when Start returns.
		require.NoError(t, l.Start(context.Background()))
		pid := bundle.signals.Listening.WaitOrTimeout(t)
		require.Equal(t, 0, bundle.signals.Woke.WaitOrTimeout(t))

		require.ErrorIs(t, bundle.signals.BackoffError.WaitOrTimeout(t), errInjected)
		newPID := bundle.signals.Listening.WaitOrTimeout(t)
		require.NotEqual(t, pid, newPID, "the connection was replaced")
		require.Equal(t, 0, bundle.signals.Woke.WaitOrTimeout(t))
		requireBackendGone(t, bundle, pid)

		notify(t, bundle)
		require.Equal(t, 1, bundle.signals.Woke.WaitOrTimeout(t))
		bundle.signals.BackoffError.RequireEmpty(t)
	})

	t.Run("InjectedDrainError", func(t *testing.T) {
		t.Parallel()

		l, bundle := setup(t, nil)
		failFirstDrain(l)
		pid := start(t, l, bundle)

		notify(t, bundle)
		require.Equal(t, 1, bundle.signals.Woke.WaitOrTimeout(t), "what arrived before the error still wakes")
		require.ErrorIs(t, bundle.signals.BackoffError.WaitOrTimeout(t), errInjected)
		require.NotEqual(t, pid, bundle.signals.Listening.WaitOrTimeout(t))
		require.Equal(t, 0, bundle.signals.Woke.WaitOrTimeout(t))

		notify(t, bundle)
		require.Equal(t, 1, bundle.signals.Woke.WaitOrTimeout(t))
	})

	t.Run("IdleConnectionIsPinged", func(t *testing.T) {
		t.Parallel()

		timeouts := make(chan struct{}, 100)
		l, bundle := setup(t, func(cfg *Config) { cfg.PingInterval = 5 * time.Millisecond })
		overrideWait(l, func(ctx context.Context, conn *pgx.Conn, real waitFunc) (*pgconn.Notification, error) {
			n, err := real(ctx, conn)
			if isTimeout(ctx, conn, err) {
				select {
				case timeouts <- struct{}{}:
				default:
				}
			}
			return n, err
		})
		start(t, l, bundle)

		// Each idle timeout is followed by a ping before the next wait, so
		// the third timeout means at least two pings succeeded.
		for range 3 {
			testsignal.Receive(t, timeouts, testsignal.Timeout, "no idle timeout")
		}
		require.True(t, l.Connected())

		notify(t, bundle)
		require.Equal(t, 1, bundle.signals.Woke.WaitOrTimeout(t))
		bundle.signals.BackoffError.RequireEmpty(t)
		bundle.signals.Listening.RequireEmpty(t)
	})

	t.Run("ConnectedFlips", func(t *testing.T) {
		t.Parallel()

		// A backoff far longer than the test, so "disconnected" lasts.
		l, bundle := setup(t, func(cfg *Config) { cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour })
		failFirstDrain(l)

		require.False(t, l.Connected(), "before Start")
		start(t, l, bundle) // requires Connected

		notify(t, bundle) // received, then the drain read fails
		require.Equal(t, 1, bundle.signals.Woke.WaitOrTimeout(t))
		require.ErrorIs(t, bundle.signals.BackoffError.WaitOrTimeout(t), errInjected)
		require.False(t, l.Connected(), "while backing off")

		stopWithin(t, l) // Stop interrupts the hour-long backoff
		require.False(t, l.Connected(), "after Stop")

		start(t, l, bundle)
		l.Stop()
		require.False(t, l.Connected())
	})

	t.Run("StartTwiceIsNoOp", func(t *testing.T) {
		t.Parallel()

		l, bundle := setup(t, nil)
		start(t, l, bundle)
		require.NoError(t, l.Start(context.Background()))

		notify(t, bundle)
		require.Equal(t, 1, bundle.signals.Woke.WaitOrTimeout(t))
		bundle.signals.Listening.RequireEmpty(t)

		var n int
		require.NoError(t, bundle.pool.QueryRow(context.Background(), `
			SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1`, ApplicationName).Scan(&n))
		require.Equal(t, 1, n)
	})
}

// stopWithin calls l.Stop and fails the test if it has not returned within
// testsignal.Timeout.
func stopWithin(t *testing.T, l *Listener) {
	t.Helper()
	testsignal.Within(t, testsignal.Timeout, "Stop", l.Stop)
}

func TestStop(t *testing.T) {
	t.Parallel()

	t.Run("WithoutStart", func(t *testing.T) {
		t.Parallel()

		l := New(Config{Waker: &countingWaker{}})
		l.Stop()
		l.Stop()
		require.False(t, l.Connected())
	})

	t.Run("Twice", func(t *testing.T) {
		t.Parallel()

		l, bundle := setup(t, nil)
		start(t, l, bundle)
		l.Stop()
		l.Stop()
		require.False(t, l.Connected())
	})

	t.Run("Concurrently", func(t *testing.T) {
		t.Parallel()

		l, bundle := setup(t, nil)
		pid := start(t, l, bundle)

		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				l.Stop()
				// Every Stop, not just the first, returns only once the
				// goroutine has exited.
				require.False(t, l.Connected())
			})
		}
		wg.Wait()
		requireBackendGone(t, bundle, pid)
	})

	t.Run("ClosesConnection", func(t *testing.T) {
		t.Parallel()

		l, bundle := setup(t, nil)
		pid := start(t, l, bundle)
		l.Stop()
		requireBackendGone(t, bundle, pid)
	})

	t.Run("RestartAfterStop", func(t *testing.T) {
		t.Parallel()

		l, bundle := setup(t, nil)
		first := start(t, l, bundle)
		l.Stop()
		second := start(t, l, bundle)
		require.NotEqual(t, first, second)

		notify(t, bundle)
		require.Equal(t, 1, bundle.signals.Woke.WaitOrTimeout(t))
	})

	t.Run("AfterStartContextCancelled", func(t *testing.T) {
		t.Parallel()

		l, bundle := setup(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		require.NoError(t, l.Start(ctx))
		pid := bundle.signals.Listening.WaitOrTimeout(t)
		cancel()

		// The goroutine ends by itself; Stop still works and Start can
		// start afresh.
		requireBackendGone(t, bundle, pid)
		require.Eventually(t, func() bool { return !l.Connected() }, testsignal.Timeout, time.Millisecond)
		l.Stop()
		require.NoError(t, l.Start(context.Background()))
		require.NotEqual(t, pid, bundle.signals.Listening.WaitOrTimeout(t))
		require.True(t, l.Connected())
	})
}

// TestLifecycle runs the shared lifecycle stress test on a real Listener.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	l, _ := setup(t, func(cfg *Config) { cfg.TestSignals = nil })
	startstoptest.Stress(t, l)
}

func TestStartStopCycles(t *testing.T) {
	t.Parallel()

	const cycles = 50

	t.Run("Sequential", func(t *testing.T) {
		t.Parallel()

		l, bundle := setup(t, nil)
		pids := map[uint32]bool{}
		for range cycles {
			pid := start(t, l, bundle)
			require.False(t, pids[pid], "each Start makes a new connection")
			pids[pid] = true
			l.Stop()
			require.False(t, l.Connected())
		}
		require.EqualValues(t, cycles, bundle.waker.n.Load(), "one wake-all per Start")
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()

		l, _ := setup(t, func(cfg *Config) { cfg.TestSignals = nil })
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				for range cycles / 5 {
					require.NoError(t, l.Start(context.Background()))
					_ = l.Connected()
					l.Stop()
				}
			})
		}
		wg.Wait()
		require.False(t, l.Connected())
	})
}
