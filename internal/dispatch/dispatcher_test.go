package dispatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/registry"
	"github.com/streamer-dev/streamer/internal/sse"
	"github.com/streamer-dev/streamer/internal/startstop/startstoptest"
	"github.com/streamer-dev/streamer/internal/testsignal"
)

// appName marks the dispatcher's connections in pg_stat_activity.
const appName = "dispatch-test"

// fakeSub is a Subscriber that records its frames, the commit times given
// with them, and how many frames each Release released.
type fakeSub struct {
	frames chan []byte
	done   chan struct{}

	mu       sync.Mutex
	cause    error
	commits  []time.Time // of the frames EnqueueHeld accepted
	held     int         // frames EnqueueHeld accepted since the last Release
	releases []int       // per Release, the frames EnqueueHeld accepted since the previous one
}

func newFakeSub() *fakeSub {
	return &fakeSub{frames: make(chan []byte, 1<<12), done: make(chan struct{})}
}

var _ Subscriber = (*fakeSub)(nil)

func (s *fakeSub) Enqueue(frame []byte) bool {
	select {
	case <-s.done:
		return false
	default:
	}
	select {
	case s.frames <- frame:
		return true
	default:
		s.Close(sse.ErrSlowConsumer)
		return false
	}
}

func (s *fakeSub) EnqueueHeld(frame []byte, committed time.Time) bool {
	if !s.Enqueue(frame) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits = append(s.commits, committed)
	s.held++
	return true
}

func (s *fakeSub) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releases = append(s.releases, s.held)
	s.held = 0
}

// released returns, per Release so far, the frames EnqueueHeld accepted
// since the previous one.
func (s *fakeSub) released() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.releases)
}

// committed returns the commit times EnqueueHeld was given so far.
func (s *fakeSub) committed() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.commits)
}

func (s *fakeSub) EnqueueWait(ctx context.Context, frame []byte) error {
	select {
	case s.frames <- frame:
		return nil
	case <-s.done:
		return sse.ErrClosed
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (s *fakeSub) Close(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cause == nil {
		s.cause = cause
		close(s.done)
	}
}

func (s *fakeSub) Done() <-chan struct{} { return s.done }

func (s *fakeSub) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cause
}

// next returns the data of the next frame, failing after testsignal.Timeout.
func (s *fakeSub) next(t *testing.T) string {
	t.Helper()
	f := testsignal.Receive(t, s.frames, testsignal.Timeout, "no frame arrived")
	for line := range strings.SplitSeq(string(f), "\n") {
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			return data
		}
	}
	t.Fatalf("frame without data: %q", f)
	return ""
}

// waitClosed waits until s is closed and returns its cause.
func (s *fakeSub) waitClosed(t *testing.T) error {
	t.Helper()
	testsignal.Receive(t, s.done, testsignal.Timeout, "subscriber was not closed")
	return s.err()
}

type bundle struct {
	pool *pgxpool.Pool
	reg  *registry.Registry[Subscriber]
	sig  *TestSignals
}

// newBundle returns a pool on a fresh database whose connections say
// appName, a registry, and initialised signals.
func newBundle(t *testing.T) *bundle {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDB(t))
	require.NoError(t, err)
	cfg.MaxConns = 8
	cfg.ConnConfig.RuntimeParams["application_name"] = appName
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	sig := &TestSignals{}
	sig.Init()
	return &bundle{pool: pool, reg: registry.New[Subscriber](), sig: sig}
}

// setup returns a started Dispatcher, stopped at cleanup.
func setup(t *testing.T, configure func(*Config)) (*Dispatcher, *bundle) {
	t.Helper()
	b := newBundle(t)
	cfg := Config{
		Pool: b.pool, Registry: b.reg, TestSignals: b.sig,
		RetryInterval: 10 * time.Millisecond,
		Logger:        zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}
	if configure != nil {
		configure(&cfg)
	}
	d := New(cfg)
	require.NoError(t, d.Start(context.Background()))
	t.Cleanup(d.Stop)
	return d, b
}

func (b *bundle) publish(t *testing.T, stream, data string) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), "SELECT streamer.publish($1, $2)", stream, data)
	require.NoError(t, err)
	b.sequence(t)
}

// subscribe subscribes a new fakeSub from now and waits until it is live.
func subscribe(t *testing.T, d *Dispatcher, b *bundle, streams ...string) *fakeSub {
	t.Helper()
	s := newFakeSub()
	_, err := d.Subscribe(context.Background(), s, streams, nil, nil)
	require.NoError(t, err)
	require.Equal(t, Subscriber(s), b.sig.Live.WaitOrTimeout(t))
	return s
}

// waitLive waits until s goes live, skipping others that do meanwhile.
func waitLive(t *testing.T, b *bundle, s Subscriber) {
	t.Helper()
	for b.sig.Live.WaitOrTimeout(t) != s {
	}
}

// sequence numbers every committed event now: in ticks mode
// (STREAMER_TEST_ORDERING=ticks) it records a tick, as the sequencer would
// a few milliseconds later; in trigger mode it does nothing.
func (b *bundle) sequence(t *testing.T) {
	t.Helper()
	pgtest.Tick(t, b.pool)
}

// readCaughtUp numbers what has committed, wakes the dispatcher and waits
// for its live read to catch up.
func readCaughtUp(t *testing.T, d *Dispatcher, b *bundle) LiveRead {
	t.Helper()
	b.sequence(t)
	d.Wake()
	return b.sig.LiveRead.WaitOrTimeout(t)
}

// lockCommits takes an ACCESS EXCLUSIVE lock on streamer.commits, so that
// every read of the dispatcher blocks, until release is called (or the test
// ends).
func lockCommits(t *testing.T, b *bundle) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "LOCK TABLE streamer.commits IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)
	var once sync.Once
	release = func() { once.Do(func() { require.NoError(t, tx.Rollback(ctx)) }) }
	t.Cleanup(release)
	return release
}

// blockedReader waits until one of the dispatcher's connections waits on a
// lock, and returns its backend PID.
func blockedReader(t *testing.T, b *bundle) uint32 {
	t.Helper()
	var pid uint32
	require.Eventually(t, func() bool {
		err := b.pool.QueryRow(context.Background(), `
			SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1 AND wait_event_type = 'Lock'`,
			appName).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) {
			return false
		}
		require.NoError(t, err)
		return true
	}, testsignal.Timeout, 5*time.Millisecond, "no dispatcher read is waiting on the lock")
	return pid
}

func terminate(t *testing.T, b *bundle, pid uint32) {
	t.Helper()
	var ok bool
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT pg_terminate_backend($1)", pid).Scan(&ok))
	require.True(t, ok)
}

func TestLifecycle(t *testing.T) {
	t.Parallel()

	t.Run("Stress", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		startstoptest.Stress(t, New(Config{Pool: b.pool, Registry: b.reg}))
	})

	t.Run("BadPoolFailsStart", func(t *testing.T) {
		t.Parallel()
		cfg, err := pgxpool.ParseConfig("postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
		require.NoError(t, err)
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		require.NoError(t, err)
		defer pool.Close()
		d := New(Config{Pool: pool, Registry: registry.New[Subscriber]()})
		require.ErrorContains(t, d.Start(context.Background()), "start dispatcher")
		_, err = d.Subscribe(context.Background(), newFakeSub(), []string{"s"}, nil, nil)
		require.ErrorIs(t, err, ErrStopped)
		d.Stop()
	})

	t.Run("SubscribeWhileNotRunning", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		d := New(Config{Pool: b.pool, Registry: b.reg, TestSignals: b.sig})
		_, err := d.Subscribe(context.Background(), newFakeSub(), []string{"s"}, nil, nil)
		require.ErrorIs(t, err, ErrStopped, "before Start")

		require.NoError(t, d.Start(context.Background()))
		d.Stop()
		testsignal.Within(t, testsignal.Timeout, "Subscribe after Stop", func() {
			_, err = d.Subscribe(context.Background(), newFakeSub(), []string{"s"}, nil, nil)
		})
		require.ErrorIs(t, err, ErrStopped, "after Stop")
		d.Unsubscribe(newFakeSub()) // a no-op, and it does not block either
	})

	t.Run("StopClosesSubscribersAndRestartServesAgain", func(t *testing.T) {
		t.Parallel()
		d, b := setup(t, nil)
		live := subscribe(t, d, b, "s")
		lockCommits(t, b) // keeps the second one replaying
		replaying := newFakeSub()
		_, err := d.Subscribe(context.Background(), replaying, []string{"s"}, &cursor.Start, nil)
		require.NoError(t, err)
		blockedReader(t, b)

		d.Stop()
		require.ErrorIs(t, live.waitClosed(t), ErrStopped)
		require.ErrorIs(t, replaying.waitClosed(t), ErrStopped)
		require.Zero(t, b.reg.Len())
	})

	t.Run("Restart", func(t *testing.T) {
		t.Parallel()
		d, b := setup(t, nil)
		subscribe(t, d, b, "s")
		d.Stop()
		require.NoError(t, d.Start(context.Background()))
		s := subscribe(t, d, b, "s")
		require.Equal(t, 1, b.reg.Len(), "the first run's subscriber is gone")
		b.publish(t, "s", "after restart")
		readCaughtUp(t, d, b)
		require.Equal(t, "after restart", s.next(t))
	})

	t.Run("CancellingStartContextStops", func(t *testing.T) {
		t.Parallel()
		b := newBundle(t)
		d := New(Config{Pool: b.pool, Registry: b.reg, TestSignals: b.sig})
		ctx, cancel := context.WithCancel(context.Background())
		require.NoError(t, d.Start(ctx))
		s := subscribe(t, d, b, "s")
		cancel()
		<-d.Stopped()
		require.ErrorIs(t, s.waitClosed(t), ErrStopped)
		_, err := d.Subscribe(context.Background(), newFakeSub(), []string{"s"}, nil, nil)
		require.ErrorIs(t, err, ErrStopped)
	})
}

func TestSubscribeCancelledContext(t *testing.T) {
	t.Parallel()

	t.Run("AlreadyCancelled", func(t *testing.T) {
		t.Parallel()
		d, b := setup(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := d.Subscribe(ctx, newFakeSub(), []string{"s"}, nil, nil)
		require.ErrorIs(t, err, context.Canceled)
		// A later subscriber goes live: the first one never did.
		subscribe(t, d, b, "s")
		require.Equal(t, 1, b.reg.Len())
	})

	t.Run("CancelledWhileDispatcherBusy", func(t *testing.T) {
		t.Parallel()
		d, b := setup(t, nil)
		release := lockCommits(t, b)
		d.Wake() // the head read blocks on the lock
		blockedReader(t, b)

		ctx, cancel := context.WithCancel(context.Background())
		gone := newFakeSub()
		errc := make(chan error, 1)
		go func() {
			_, err := d.Subscribe(ctx, gone, []string{"s"}, nil, nil)
			errc <- err
		}()
		// Cancel only once the connect has been handed over.
		require.Eventually(t, func() bool {
			d.mu.Lock()
			defer d.mu.Unlock()
			return len(d.cmds) == 1
		}, testsignal.Timeout, time.Millisecond)
		cancel()
		require.ErrorIs(t, testsignal.Receive(t, errc, testsignal.Timeout, "Subscribe did not return when its context was cancelled"),
			context.Canceled)
		release()
		// The cancelled connect was handed over before its undo: once a
		// later subscriber is live, the cancelled one is not (it may have
		// been live in between).
		later := newFakeSub()
		_, err := d.Subscribe(context.Background(), later, []string{"s"}, nil, nil)
		require.NoError(t, err)
		waitLive(t, b, later)
		require.Equal(t, []Subscriber{later}, b.reg.Lookup("s"))
	})
}

// TestUnsubscribeDoesNotBlock unsubscribes while the dispatcher goroutine is
// stuck in a database read: every call returns at once, and the dispatcher
// forgets the subscribers once the read is over.
func TestUnsubscribeDoesNotBlock(t *testing.T) {
	t.Parallel()
	d, b := setup(t, nil)
	subs := make([]*fakeSub, 10)
	for i := range subs {
		subs[i] = subscribe(t, d, b, "s", fmt.Sprint("own", i))
	}
	release := lockCommits(t, b)
	d.Wake()
	blockedReader(t, b)

	testsignal.Within(t, testsignal.Timeout, "Unsubscribe while the dispatcher reads", func() {
		for range 100 { // more than any buffer a blocking hand-off could have
			for _, s := range subs {
				d.Unsubscribe(s)
			}
		}
	})
	require.Equal(t, len(subs), b.reg.Len(), "not taken yet: the dispatcher is still reading")

	release()
	later := subscribe(t, d, b, "s") // handed over after the Unsubscribes
	require.Equal(t, []Subscriber{later}, b.reg.Lookup("s"))
	require.Equal(t, 1, b.reg.Len())
}

// TestLiveReadFailureRetries kills the connection of a live read: the read
// fails, is retried, and the event it was reading is still delivered once.
func TestLiveReadFailureRetries(t *testing.T) {
	t.Parallel()
	d, b := setup(t, nil)
	s := subscribe(t, d, b, "s")
	b.publish(t, "s", "one") // no listener: nothing reads it yet
	release := lockCommits(t, b)
	d.Wake()
	terminate(t, b, blockedReader(t, b))

	err := b.sig.ReadError.WaitOrTimeout(t)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "57P01", pgErr.Code) // admin_shutdown
	release()

	require.Equal(t, "one", s.next(t))
	require.Equal(t, 1, b.sig.LiveRead.WaitOrTimeout(t).Events, "the retry read the event")
	b.publish(t, "s", "two")
	readCaughtUp(t, d, b)
	require.Equal(t, "two", s.next(t))
	require.Empty(t, s.frames, "nothing twice")
}

// TestReplayFailureClosesSubscriber kills the connection of a replay's
// read: the subscriber is closed with errReplayFailed and never goes live.
func TestReplayFailureClosesSubscriber(t *testing.T) {
	t.Parallel()
	d, b := setup(t, nil)
	b.publish(t, "s", "old")
	release := lockCommits(t, b)
	s := newFakeSub()
	_, err := d.Subscribe(context.Background(), s, []string{"s"}, &cursor.Start, nil)
	require.NoError(t, err)
	terminate(t, b, blockedReader(t, b))

	cause := s.waitClosed(t)
	require.ErrorIs(t, cause, errReplayFailed)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, cause, &pgErr)
	release()

	// The dispatcher is still serving others, and s is in no index.
	other := subscribe(t, d, b, "s")
	require.Equal(t, []Subscriber{other}, b.reg.Lookup("s"))
	b.sig.Live.RequireEmpty(t)
}

// TestLiveReadFilter subscribes to many streams: up to 1,000 the live read
// names them, beyond that it reads every stream and drops what nobody wants.
func TestLiveReadFilter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		streams     int
		wantStreams int
	}{
		{maxFilterStreams, maxFilterStreams},
		{maxFilterStreams + 1, 0},
	} {
		t.Run(fmt.Sprint(tc.streams, " streams"), func(t *testing.T) {
			t.Parallel()
			d, b := setup(t, nil)
			// Half on one subscriber, half on many, one stream shared.
			names := make([]string, tc.streams)
			for i := range names {
				names[i] = fmt.Sprint("s", i)
			}
			many := subscribe(t, d, b, names[:tc.streams/2]...)
			for _, name := range names[tc.streams/2:] {
				subscribe(t, d, b, name)
			}
			last := subscribe(t, d, b, names[0], names[len(names)-1])

			b.publish(t, "nobody", "x")
			b.publish(t, names[0], "first")
			b.publish(t, names[len(names)-1], "last")
			got := readCaughtUp(t, d, b)
			require.Equal(t, tc.wantStreams, got.Streams)

			require.Equal(t, "first", many.next(t))
			require.Equal(t, "first", last.next(t))
			require.Equal(t, "last", last.next(t))
			require.Empty(t, many.frames, "nobody's event and other streams' events are dropped")
			require.Empty(t, last.frames)
		})
	}
}

// TestReplayJoinsLive resumes a subscriber while events keep arriving: the
// replay and the live events it buffered meanwhile join without a gap or a
// duplicate.
func TestReplayJoinsLive(t *testing.T) {
	t.Parallel()
	d, b := setup(t, func(c *Config) { c.PageSize = 3 })
	for i := range 10 {
		b.publish(t, "s", fmt.Sprint(i))
	}
	release := lockCommits(t, b)
	s := newFakeSub()
	_, err := d.Subscribe(context.Background(), s, []string{"s"}, &cursor.Start, nil)
	require.NoError(t, err)
	blockedReader(t, b)
	release()
	for i := 10; i < 15; i++ {
		b.publish(t, "s", fmt.Sprint(i))
		d.Wake()
	}
	for i := range 15 {
		require.Equal(t, fmt.Sprint(i), s.next(t))
	}
	require.Equal(t, Subscriber(s), b.sig.Live.WaitOrTimeout(t))
	b.publish(t, "s", "live")
	d.Wake()
	require.Equal(t, "live", s.next(t))
	require.Empty(t, s.frames)
}

// TestLiveReadFilterFollowsSubscribers checks that the streams a live read
// names follow subscribers as they come and go, replaying ones included.
func TestLiveReadFilterFollowsSubscribers(t *testing.T) {
	t.Parallel()
	d, b := setup(t, nil)
	a := subscribe(t, d, b, "a")
	b.publish(t, "a", "a1")
	require.Equal(t, LiveRead{Events: 1, Streams: 1}, readCaughtUp(t, d, b))
	require.Equal(t, "a1", a.next(t))

	// A stream subscribed after a read is in the next one.
	bb := subscribe(t, d, b, "b")
	b.publish(t, "b", "b1")
	require.Equal(t, LiveRead{Events: 1, Streams: 2}, readCaughtUp(t, d, b))
	require.Equal(t, "b1", bb.next(t))

	// An unsubscribed stream is not.
	d.Unsubscribe(a)
	require.Eventually(t, func() bool { return b.reg.Len() == 1 }, testsignal.Timeout, time.Millisecond)
	require.Equal(t, 1, readCaughtUp(t, d, b).Streams)

	// A replaying subscriber's streams count: 1,000 live streams and one
	// replaying make 1,001, read unfiltered. The replay is held in
	// EnqueueWait by a subscriber that takes no frame until told.
	b.publish(t, "r", "r1")
	names := make([]string, maxFilterStreams-1) // with "b", 1,000 live
	for i := range names {
		names[i] = fmt.Sprint("s", i)
	}
	subscribe(t, d, b, names...)
	require.Equal(t, maxFilterStreams, readCaughtUp(t, d, b).Streams)
	r := &fakeSub{frames: make(chan []byte), done: make(chan struct{})}
	_, err := d.Subscribe(context.Background(), r, []string{"r"}, &cursor.Start, nil)
	require.NoError(t, err)
	require.Equal(t, 0, readCaughtUp(t, d, b).Streams)
	require.Equal(t, "r1", r.next(t))
	require.Equal(t, Subscriber(r), b.sig.Live.WaitOrTimeout(t))
}
