package listener

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/rs/zerolog"

	"github.com/streamer-dev/streamer/internal/backoff"
	"github.com/streamer-dev/streamer/internal/startstop"
)

// Waker is told that new events may have been committed. The dispatcher
// implements it; neither method may block, and Wake should coalesce
// repeated calls.
type Waker interface {
	// Wake: something may have been committed (or a notification missed:
	// the listener calls it after every LISTEN); go and read.
	Wake()
	// Notified hands over a notification's payload when it is not empty
	// (a tick's, which carries its events), with the PID of the backend
	// that sent it, in the order they arrived.
	Notified(pid uint32, payload string)
}

const (
	// connectTimeout bounds one connect + LISTEN attempt, so a server that
	// accepts TCP but never answers cannot stall reconnection forever.
	connectTimeout = 10 * time.Second

	// closeTimeout bounds sending Terminate when closing the connection.
	closeTimeout = time.Second

	// minPingTimeout is the least time a ping is given to answer; the ping
	// timeout is otherwise PingInterval.
	minPingTimeout = time.Second

	// drainWait is how long the drain waits for one more notification
	// before deciding that the burst is over. Notifications already read
	// into pgx's buffer or the socket's are returned well within it.
	drainWait = time.Millisecond

	// maxDrain bounds one drain, so a steady stream of notifications
	// cannot postpone the wake indefinitely.
	maxDrain = 10 * time.Millisecond
)

// waitFunc waits for one notification on conn.
type waitFunc func(ctx context.Context, conn *pgx.Conn) (*pgconn.Notification, error)

// Listener LISTENs on one channel over a dedicated connection and wakes a
// [Waker]. Create it with [New]; see the package documentation.
type Listener struct {
	startstop.Base
	cfg     Config
	log     zerolog.Logger
	signals *TestSignals // never nil; inert unless the test initialised it

	// waitForNotification is the one step tests replace to inject failures.
	// It is set by New and never changed after Start.
	waitForNotification waitFunc

	connected atomic.Bool
}

// New returns a Listener for cfg with defaults applied. It does not connect.
func New(cfg Config) *Listener {
	cfg = cfg.withDefaults()
	signals := cfg.TestSignals
	if signals == nil {
		signals = &TestSignals{}
	}
	return &Listener{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("component", "listener").Str("channel", cfg.Channel).Logger(),
		signals: signals,
		waitForNotification: func(ctx context.Context, conn *pgx.Conn) (*pgconn.Notification, error) {
			return conn.WaitForNotification(ctx)
		},
	}
}

// Start connects, runs LISTEN, wakes the Waker once (anything committed
// before LISTEN began is read), and then starts the listening goroutine.
// Connection and LISTEN errors are returned (wrapped), so a bad DSN fails
// fast. Start on a running Listener does nothing and returns nil.
//
// The goroutine runs until Stop is called or ctx ends, so ctx must live as
// long as the service, not just the start-up.
func (l *Listener) Start(ctx context.Context) error {
	ctx, shouldStart, started, stopped := l.StartInit(ctx)
	if !shouldStart {
		return nil
	}
	conn, connConfig, err := l.first(ctx)
	if err != nil {
		// Read the cause before stopped, which cancels ctx with ErrStop.
		stoppedMeanwhile := errors.Is(context.Cause(ctx), startstop.ErrStop)
		stopped()
		if stoppedMeanwhile {
			return nil // a concurrent Stop ended this run before it began
		}
		return err
	}
	go func() {
		defer stopped()
		started()
		l.run(ctx, connConfig, conn)
	}()
	return nil
}

// first makes the first connection, runs LISTEN on it and wakes the Waker.
func (l *Listener) first(ctx context.Context) (*pgx.Conn, *pgx.ConnConfig, error) {
	if l.cfg.Waker == nil {
		return nil, nil, errors.New("listener: Config.Waker is nil")
	}
	connConfig, err := l.connConfig()
	if err != nil {
		return nil, nil, err
	}
	conn, err := l.connectAndListen(ctx, connConfig)
	if err != nil {
		return nil, nil, err
	}
	l.connected.Store(true)
	l.log.Info().Uint32("pid", conn.PgConn().PID()).Msg("listener: listening")
	l.signals.Listening.Signal(conn.PgConn().PID())
	l.wake(0)
	return conn, connConfig, nil
}

// Stop stops the goroutine and blocks until it has exited and its connection
// is closed. It is safe before Start, more than once, and concurrently; a
// concurrent Stop returns only after the goroutine has exited. A Stop that
// races a Start in progress interrupts its connection attempt.
func (l *Listener) Stop() {
	l.Base.Stop()
}

// Connected reports whether LISTEN is currently established.
func (l *Listener) Connected() bool {
	return l.connected.Load()
}

// connConfig parses the DSN and fixes the settings the listener relies on.
func (l *Listener) connConfig() (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(l.cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("listener: parse database URL: %w", err)
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = ApplicationName
	}
	// Timed-out waits must leave the connection usable (see the package
	// documentation). This is ParseConfig's default; pin it.
	cfg.BuildContextWatcherHandler = func(pgConn *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: pgConn.Conn()}
	}
	return cfg, nil
}

// connectAndListen opens a new connection and runs LISTEN on it.
func (l *Listener) connectAndListen(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()

	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("listener: connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.cfg.Channel}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("listener: LISTEN %q: %w", l.cfg.Channel, err)
	}
	return conn, nil
}

// run is the listening goroutine. It owns conn (nil while disconnected) and
// closes it before it returns.
func (l *Listener) run(ctx context.Context, cfg *pgx.ConnConfig, conn *pgx.Conn) {
	defer func() {
		l.connected.Store(false)
		if conn != nil {
			closeConn(conn)
		}
	}()

	attempt := 0 // reconnect attempts since the last successful LISTEN
	for {
		if conn == nil {
			c, err := l.connectAndListen(ctx, cfg)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				d := backoff.Delay(attempt, l.cfg.MinBackoff, l.cfg.MaxBackoff)
				l.log.Warn().Err(err).Int("attempt", attempt+1).Dur("backoff", d).Msg("listener: reconnect failed")
				l.signals.BackoffError.Signal(err)
				if !backoff.Sleep(ctx, d) {
					return
				}
				attempt++
				continue
			}
			conn = c
			l.connected.Store(true)
			l.log.Info().Uint32("pid", conn.PgConn().PID()).Int("attempts", attempt+1).Msg("listener: reconnected")
			l.cfg.Metrics.ListenerReconnected()
			attempt = 0
			l.signals.Listening.Signal(conn.PgConn().PID())
			l.wake(0)
		}

		err := l.waitOnce(ctx, conn)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		l.connected.Store(false)
		closeConn(conn)
		conn = nil
		d := backoff.Delay(attempt, l.cfg.MinBackoff, l.cfg.MaxBackoff)
		l.log.Error().Err(err).Dur("backoff", d).Msg("listener: lost connection")
		l.signals.BackoffError.Signal(err)
		if !backoff.Sleep(ctx, d) {
			return
		}
		attempt++
	}
}

// waitOnce waits up to PingInterval for a notification. On one it wakes,
// drains the burst and wakes once more if the burst had more than one
// notification without a payload; on an idle timeout it pings. A returned
// error means the connection must be replaced (or ctx is done).
func (l *Listener) waitOnce(ctx context.Context, conn *pgx.Conn) error {
	waitCtx, cancel := context.WithTimeout(ctx, l.cfg.PingInterval)
	note, err := l.waitForNotification(waitCtx, conn)
	timedOut := isTimeout(waitCtx, conn, err)
	cancel()

	switch {
	case err == nil:
		// Wake at once, so that the first notification of a burst does not
		// wait for the drain; then once more if the drain found others
		// that carried nothing (a payload is handed over as it arrives).
		if !l.handPayload(note) {
			l.cfg.Waker.Wake()
		}
		n, empty, err := l.drain(ctx, conn)
		if empty > 0 {
			l.cfg.Waker.Wake()
		}
		l.signals.Woke.Signal(n) // even if the drain failed: n notifications did arrive
		return err
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case timedOut:
		pingCtx, cancel := context.WithTimeout(ctx, max(l.cfg.PingInterval, minPingTimeout))
		defer cancel()
		if err := conn.Ping(pingCtx); err != nil {
			return fmt.Errorf("listener: ping: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("listener: wait for notification: %w", err)
	}
}

// drain reads the notifications that follow the first one without a pause
// (up to maxDrain in total), hands each payload over as it arrives, and
// returns how many notifications there were in all, the first included,
// and how many of those after the first had no payload.
func (l *Listener) drain(ctx context.Context, conn *pgx.Conn) (n, empty int, err error) {
	n = 1
	deadline := time.Now().Add(maxDrain)
	for time.Now().Before(deadline) {
		waitCtx, cancel := context.WithTimeout(ctx, drainWait)
		note, err := l.waitForNotification(waitCtx, conn)
		timedOut := isTimeout(waitCtx, conn, err)
		cancel()
		switch {
		case err == nil:
			n++
			if !l.handPayload(note) {
				empty++
			}
		case ctx.Err() != nil:
			return n, empty, context.Cause(ctx)
		case timedOut:
			return n, empty, nil
		default:
			return n, empty, fmt.Errorf("listener: drain notifications: %w", err)
		}
	}
	return n, empty, nil
}

// handPayload hands a notification's payload to the Waker, and reports
// false, handing nothing, when it has none.
func (l *Listener) handPayload(note *pgconn.Notification) bool {
	if note.Payload == "" {
		return false
	}
	l.cfg.Waker.Notified(note.PID, note.Payload)
	return true
}

// isTimeout reports whether err is waitCtx's own deadline expiring while conn
// stayed open, i.e. "nothing arrived", as opposed to a broken connection.
func isTimeout(waitCtx context.Context, conn *pgx.Conn, err error) bool {
	return err != nil &&
		errors.Is(waitCtx.Err(), context.DeadlineExceeded) &&
		errors.Is(err, context.DeadlineExceeded) &&
		!conn.IsClosed()
}

func (l *Listener) wake(n int) {
	l.cfg.Waker.Wake()
	l.signals.Woke.Signal(n)
}

// closeConn closes conn, bounded by closeTimeout, and waits for pgx's
// cleanup so no goroutine outlives it.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = conn.Close(ctx) // the connection is being discarded; a failed Terminate changes nothing
	select {
	case <-conn.PgConn().CleanupDone():
	case <-ctx.Done():
	}
}
