package sequencer

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/streamer-dev/streamer/internal/backoff"
	"github.com/streamer-dev/streamer/internal/defaults"
	"github.com/streamer-dev/streamer/internal/silence"
	"github.com/streamer-dev/streamer/internal/startstop"
	"github.com/streamer-dev/streamer/internal/testsignal"
	"github.com/streamer-dev/streamer/migrations"
)

// Defaults applied by [New] to zero fields of [Config].
const (
	DefaultInterval     = 5 * time.Millisecond
	DefaultIdleInterval = 20 * time.Millisecond
	DefaultLinger       = 100 * time.Millisecond
	DefaultModeInterval = time.Second
	DefaultMinBackoff   = 100 * time.Millisecond
	DefaultMaxBackoff   = 5 * time.Second
	// DefaultSilenceTimeout: see Config.SilenceTimeout.
	DefaultSilenceTimeout = 10 * time.Second
)

// ApplicationName is the connection's application_name unless the DSN sets
// one.
const ApplicationName = "streamer-sequencer"

// tickQuery records a tick and reads how full PostgreSQL's NOTIFY queue is:
// every tick NOTIFYs with a payload, and a session that LISTENs inside a
// long transaction holds the queue's tail until the queue is full and every
// NOTIFY (every tick, every trigger-mode COMMIT) fails.
const tickQuery = "SELECT streamer.tick(), pg_notification_queue_usage()"

// recordQuery makes this session's backend streamer.ordering.sequencer_pid
// and announces it. Dispatchers apply a tick's notification only from the
// backend recorded there (anyone may NOTIFY; only the sender's PID cannot
// be forged), so in ticks mode the sequencer records itself once per
// session, in the transaction of its first tick there (tickAndRecord).
// Only the lock's holder records, so the record stays this session's while
// it leads. Not at taking the lock: in trigger mode the sequencer writes
// nothing, and so still works on a read-only database. The announcement
// (Announcement, committed with the record, after the tick's
// notifications) makes every dispatcher read the record again before it
// trusts another note: a dispatcher trusts the PID it last read, and once
// the backend that had it is gone the PID may be any session's. Until the
// announcement arrives (from the old backend's end to the new sequencer's
// first tick: the time another server takes to get the lock, or this one
// to reconnect) a dispatcher may still trust the old PID.
const recordQuery = `WITH recorded AS (
	UPDATE streamer.ordering SET sequencer_pid = pg_backend_pid() RETURNING 1
) SELECT pg_notify('streamer', '` + Announcement + `') FROM recorded`

// Announcement is the payload with which a sequencer says, on the
// "streamer" channel, that it has recorded its backend in
// streamer.ordering.sequencer_pid (internal/dispatch reads it again).
const Announcement = "sequencer"

// closeTimeout bounds closing the connection.
const closeTimeout = time.Second

// Config configures a [Sequencer].
type Config struct {
	// DatabaseURL is a libpq-style connection string or URL. Required.
	DatabaseURL string
	// Interval is the wait after a tick that numbered something, and
	// after any tick within Linger of one; default 5ms. With the tick's own
	// duration it bounds the latency ticks add while events arrive.
	Interval time.Duration
	// IdleInterval caps the wait after empty ticks (it doubles from
	// Interval); default 20ms: the most a first event after an idle spell
	// waits for its tick.
	IdleInterval time.Duration
	// Linger is how long after the last tick that numbered something the
	// wait stays Interval before it starts doubling; default 100ms. Publishers
	// that commit every few milliseconds then never wait for a backed-off
	// tick; an empty tick is read-only (migrations/007_ticks.sql).
	Linger time.Duration
	// ModeInterval is the wait in trigger mode before asking again; default 1s.
	ModeInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait after an error.
	MinBackoff, MaxBackoff time.Duration
	// SilenceTimeout is how long PostgreSQL keeps this sequencer's session
	// once it hears nothing more on it (its idle_session_timeout); default
	// 10s, and at least five times the longest wait between two ticks
	// (IdleInterval, ModeInterval). A server that froze, or lost its
	// connection without PostgreSQL seeing a FIN or RST (a partition, a
	// dead host, a dropped NAT entry), would otherwise keep the lock, and
	// every server would stop ticking, until TCP keepalive ends the
	// session: two hours by default. So does a waiting session granted the
	// lock after its server is gone. PostgreSQL 13 has no such setting.
	SilenceTimeout time.Duration
	// Metrics receives the sequencer's counts; nil counts nothing.
	Metrics Metrics
	Logger  zerolog.Logger
	// TestSignals, when non-nil and initialised, report to tests.
	TestSignals *TestSignals
}

// Metrics receives the sequencer's counts; *metrics.Metrics implements it.
// Its methods are called from the sequencer's goroutine and must not block.
type Metrics interface {
	// SequencerTicked counts one tick in ticks mode that numbered n
	// transactions (0: an empty tick) and took d.
	SequencerTicked(n int, d time.Duration)
	// SequencerTookLock counts one taking of the sequencer lock.
	SequencerTookLock()
	// SequencerFailed counts one error after which the sequencer backed off.
	SequencerFailed()
	// NotifyQueueUsage reports pg_notification_queue_usage() as the same
	// statement as a tick (or, in trigger mode, a mode check) saw it.
	NotifyQueueUsage(fraction float64)
}

type noMetrics struct{}

func (noMetrics) SequencerTicked(int, time.Duration) {}
func (noMetrics) SequencerTookLock()                 {}
func (noMetrics) SequencerFailed()                   {}
func (noMetrics) NotifyQueueUsage(float64)           {}

// TestSignals are the sequencer's test signals.
type TestSignals struct {
	// Leading fires with the backend PID when the sequencer takes the lock.
	Leading testsignal.TestSignal[uint32]
	// Ticked fires after each tick that numbered transactions, with how many.
	Ticked testsignal.TestSignal[int]
	// Failed fires with each error that made the sequencer back off.
	Failed testsignal.TestSignal[error]
	// Waited fires after each tick with what it did and the wait chosen.
	Waited testsignal.TestSignal[Tick]
}

// Tick is one tick as [TestSignals.Waited] reports it.
type Tick struct {
	Numbered int           // transactions numbered (0 when empty or in trigger mode)
	Wait     time.Duration // the wait before the next tick
	Poked    bool          // a poke cut the wait before this tick short
	Began    time.Time     // when the tick's round trip began
	Took     time.Duration // how long it took
}

// Init enables every signal.
func (s *TestSignals) Init() {
	s.Leading.Init()
	s.Ticked.Init()
	s.Failed.Init()
	s.Waited.Init()
}

func (c Config) withDefaults() Config {
	defaults.Positive(&c.Interval, DefaultInterval)
	if c.IdleInterval < c.Interval {
		c.IdleInterval = max(DefaultIdleInterval, c.Interval)
	}
	defaults.Positive(&c.Linger, DefaultLinger)
	defaults.Positive(&c.ModeInterval, DefaultModeInterval)
	defaults.Positive(&c.MinBackoff, DefaultMinBackoff)
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(DefaultMaxBackoff, c.MinBackoff)
	}
	defaults.Positive(&c.SilenceTimeout, DefaultSilenceTimeout)
	c.SilenceTimeout = max(c.SilenceTimeout, 5*max(c.IdleInterval, c.ModeInterval))
	if c.TestSignals == nil {
		c.TestSignals = &TestSignals{}
	}
	if c.Metrics == nil {
		c.Metrics = noMetrics{}
	}
	return c
}

// Sequencer records ticks while it holds the sequencer lock. See the
// package documentation.
type Sequencer struct {
	startstop.Base
	cfg     Config
	leading atomic.Bool
	// pokable: leading, and the last tick found ticks mode.
	pokable atomic.Bool
	ticks   atomic.Int64
	pokes   chan struct{} // 1-buffered: pokes coalesce
	// warnedSilence: the warning that PostgreSQL cannot bound a silent
	// session was logged (the sequencer's goroutine alone uses it).
	warnedSilence bool
}

var _ startstop.Service = (*Sequencer)(nil)

// New returns a sequencer that is not running.
func New(cfg Config) *Sequencer {
	return &Sequencer{cfg: cfg.withDefaults(), pokes: make(chan struct{}, 1)}
}

// Leading reports whether this sequencer holds the lock now.
func (s *Sequencer) Leading() bool { return s.leading.Load() }

// Poke tells the sequencer that a publishing transaction has just
// committed (this server's POST /publish calls it after each COMMIT): if
// it leads in ticks mode and is waiting longer than Interval (backed off
// while idle), it ticks Interval after its last tick ended instead, or at
// once when that has passed. It never blocks and pokes coalesce: one
// pending poke stands for any number. A no-op on a sequencer that does not
// lead or found trigger mode, and safe on a nil *Sequencer.
func (s *Sequencer) Poke() {
	if s == nil || !s.pokable.Load() {
		return
	}
	select {
	case s.pokes <- struct{}{}:
	default:
	}
}

// Ticks returns how many ticks that numbered transactions this sequencer
// has recorded.
func (s *Sequencer) Ticks() int64 { return s.ticks.Load() }

// Start checks the DSN and starts the goroutine, which runs until Stop is
// called or ctx ends. Connection errors are retried in the background: a
// server that is not the sequencer does not need the database to start.
func (s *Sequencer) Start(ctx context.Context) error {
	connCfg, err := s.connConfig()
	if err != nil {
		return err
	}
	ctx, shouldStart, started, stopped := s.StartInit(ctx)
	if !shouldStart {
		return nil
	}
	go func() {
		defer stopped()
		started()
		s.run(ctx, connCfg)
	}()
	return nil
}

// connConfig is the configuration of the sequencer's connection: the
// DSN's, with ApplicationName unless it names one, and a dialer that
// bounds a silent connection (dialer).
func (s *Sequencer) connConfig() (*pgx.ConnConfig, error) {
	connCfg, err := pgx.ParseConfig(s.cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("sequencer: parse database URL: %w", err)
	}
	if _, ok := connCfg.RuntimeParams["application_name"]; !ok {
		connCfg.RuntimeParams["application_name"] = ApplicationName
	}
	connCfg.DialFunc = dialer(s.cfg.SilenceTimeout, connCfg.ConnectTimeout)
	return connCfg, nil
}

func (s *Sequencer) run(ctx context.Context, connCfg *pgx.ConnConfig) {
	log := s.cfg.Logger
	for attempt := 0; ; attempt++ {
		led, err := s.session(ctx, connCfg)
		if ctx.Err() != nil {
			return
		}
		if led {
			attempt = 0 // a new failure after a working session starts low
		}
		d := backoff.Delay(attempt, s.cfg.MinBackoff, s.cfg.MaxBackoff)
		log.Warn().Err(err).Dur("backoff", d).Msg("sequencer: lost the connection or a tick failed")
		s.cfg.Metrics.SequencerFailed()
		s.cfg.TestSignals.Failed.Signal(err)
		if !backoff.Sleep(ctx, d) {
			return
		}
	}
}

// session connects, waits for the lock and ticks until an error or ctx
// ends; led reports whether it recorded a tick. Closing the connection
// releases the lock.
func (s *Sequencer) session(ctx context.Context, connCfg *pgx.ConnConfig) (led bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, connCfg)
	if err != nil {
		return false, fmt.Errorf("sequencer: connect: %w", err)
	}
	defer func() {
		s.pokable.Store(false)
		s.leading.Store(false)
		cctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if err := s.bound(ctx, conn); err != nil {
		return false, err
	}
	// Blocks while another server sequences; its death releases the lock,
	// and so does its silence (bound).
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, $2)",
		int32(migrations.LockClass), int32(migrations.SequencerLockID)); err != nil {
		return false, fmt.Errorf("sequencer: wait for the sequencer lock: %w", err)
	}
	s.leading.Store(true)
	s.cfg.Metrics.SequencerTookLock()
	pid := conn.PgConn().PID()
	s.cfg.Logger.Info().Uint32("pid", pid).Msg("sequencer: this server records ticks")
	s.cfg.TestSignals.Leading.Signal(pid)

	timer := time.NewTimer(time.Hour) // one per session, reset for each wait
	defer timer.Stop()
	wait := s.cfg.Interval
	var busy time.Time // when the last tick that numbered something ended
	poked := false
	recorded := false // this session's backend is streamer.ordering.sequencer_pid
	for {
		// This tick serves every poke made so far: those transactions
		// committed before its snapshot.
		select {
		case <-s.pokes:
		default:
		}
		var n *int32
		numbered := 0
		began := time.Now()
		var queue float64
		if recorded {
			if err := conn.QueryRow(ctx, tickQuery).Scan(&n, &queue); err != nil {
				return led, fmt.Errorf("sequencer: tick: %w", err)
			}
		} else {
			var err error
			if n, queue, err = tickAndRecord(ctx, conn); err != nil {
				return led, fmt.Errorf("sequencer: tick: %w", err)
			}
			recorded = n != nil
		}
		ended := time.Now()
		took := ended.Sub(began)
		led = true
		s.pokable.Store(n != nil)
		switch {
		case n == nil: // trigger mode
			wait = s.cfg.ModeInterval
		case *n > 0:
			numbered = int(*n)
			s.ticks.Add(1)
			s.cfg.TestSignals.Ticked.Signal(int(*n))
			wait, busy = s.cfg.Interval, ended
		case ended.Sub(busy) < s.cfg.Linger:
			wait = s.cfg.Interval
		default:
			wait = min(max(wait*2, s.cfg.Interval), s.cfg.IdleInterval)
		}
		if n != nil {
			s.cfg.Metrics.SequencerTicked(numbered, took)
		}
		s.cfg.Metrics.NotifyQueueUsage(queue)
		s.cfg.TestSignals.Waited.Signal(Tick{Numbered: numbered, Wait: wait, Poked: poked, Began: began, Took: took})
		var err error
		if poked, err = s.sleep(ctx, timer, wait, ended, n != nil); err != nil {
			return led, err
		}
	}
}

// bound makes PostgreSQL end this session once it has heard nothing on it
// for SilenceTimeout (package silence), so that a holder of the lock that
// went silent releases it, between ticks or inside a session's first tick
// (tickAndRecord's transaction). Waiting for the lock and ticking are not
// idle; between ticks the session is idle for at most IdleInterval or
// ModeInterval.
func (s *Sequencer) bound(ctx context.Context, conn *pgx.Conn) error {
	outside, err := silence.Bound(ctx, conn, s.cfg.SilenceTimeout)
	if err != nil {
		return fmt.Errorf("sequencer: %w", err)
	}
	if !outside && !s.warnedSilence {
		s.warnedSilence = true
		s.cfg.Logger.Warn().Msg("sequencer: PostgreSQL before 14 has no idle_session_timeout: if the sequencing server freezes or is cut off without its connection closing, ticks stop on every server until TCP keepalive ends its session")
	}
	return nil
}

// tickAndRecord is a session's tick until it has recorded itself: in
// ticks mode (the tick returns non-NULL) it records this backend and
// announces it (recordQuery) in the tick's own transaction, so that the
// tick's notifications commit with the record and are trusted, and no
// dispatcher that looks the record up on them finds the previous
// sequencer's PID there. In trigger mode it writes nothing.
func tickAndRecord(ctx context.Context, conn *pgx.Conn) (n *int32, queue float64, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }() // after Commit, a no-op
	if err := tx.QueryRow(ctx, tickQuery).Scan(&n, &queue); err != nil {
		return nil, 0, err
	}
	if n != nil {
		if _, err := tx.Exec(ctx, recordQuery); err != nil {
			return nil, 0, fmt.Errorf("record the sequencing backend: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, 0, err
	}
	return n, queue, nil
}

// sleep waits d, or less when poked in ticks mode: then until Interval
// after the last tick ended (at once if that has passed), so that pokes
// never make ticks closer than Interval. poked reports a wait a poke cut
// short.
func (s *Sequencer) sleep(ctx context.Context, timer *time.Timer, d time.Duration, ended time.Time, ticksMode bool) (poked bool, err error) {
	var pokes <-chan struct{} // nil: a poke cannot shorten a wait of Interval
	if ticksMode && d > s.cfg.Interval {
		pokes = s.pokes
	}
	timer.Reset(d)
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-timer.C:
			return poked, nil
		case <-pokes:
			poked, pokes = true, nil
			gap := s.cfg.Interval - time.Since(ended)
			if gap <= 0 {
				timer.Stop()
				return true, nil
			}
			timer.Reset(gap)
		}
	}
}
