package server_test

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/dispatch"
	"github.com/streamer-dev/streamer/internal/listener"
	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/registry"
	"github.com/streamer-dev/streamer/internal/sequencer"
	"github.com/streamer-dev/streamer/internal/server"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// stack is the whole server on loopback against a fresh database.
type stack struct {
	url      string
	dbURL    string
	pool     *pgxpool.Pool
	reg      *registry.Registry[dispatch.Subscriber]
	disp     *dispatch.Dispatcher
	lis      *listener.Listener
	seq      *sequencer.Sequencer
	srv      *server.Server
	dsig     *dispatch.TestSignals
	lsig     *listener.TestSignals
	shutdown func()
	// subscribes counts the server's calls of Dispatcher.Subscribe.
	subscribes *atomic.Int64
}

type stackOpts struct {
	server   server.Config
	dispatch dispatch.Config
	// logOut, when set, also receives the server's log, at debug level.
	logOut io.Writer
}

// countingDispatcher counts Subscribe calls: a refused request must not
// reach the dispatcher at all.
type countingDispatcher struct {
	*dispatch.Dispatcher
	n *atomic.Int64
}

func (d countingDispatcher) Subscribe(ctx context.Context, sub dispatch.Subscriber, streams []string, from *cursor.Position, audience []string) (cursor.Position, error) {
	d.n.Add(1)
	return d.Dispatcher.Subscribe(ctx, sub, streams, from, audience)
}

func setup(t *testing.T, opts ...func(*stackOpts)) *stack {
	t.Helper()
	ctx := context.Background()
	var o stackOpts
	for _, f := range opts {
		f(&o)
	}
	dbURL := pgtest.NewDB(t)
	cfg, err := pgxpool.ParseConfig(dbURL)
	require.NoError(t, err)
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	s := &stack{dbURL: dbURL, pool: pool, reg: registry.New[dispatch.Subscriber](),
		dsig: &dispatch.TestSignals{}, lsig: &listener.TestSignals{}}
	// Only the signals tests wait on: an unread signal that overflows its
	// buffer fails the next wait on it.
	s.dsig.Live.Init()
	s.lsig.Listening.Init()
	s.lsig.BackoffError.Init()

	dc := o.dispatch
	dc.Pool, dc.Registry, dc.Logger, dc.TestSignals = pool, s.reg, log, s.dsig
	if dc.ReplayWorkers == 0 {
		dc.ReplayWorkers = 4
	}
	s.disp = dispatch.New(dc)
	require.NoError(t, s.disp.Start(ctx))
	t.Cleanup(s.disp.Stop)

	s.lis = listener.New(listener.Config{DatabaseURL: dbURL, Waker: s.disp, Logger: log,
		TestSignals: s.lsig, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	require.NoError(t, s.lis.Start(ctx))
	t.Cleanup(s.lis.Stop)

	// In ticks mode (STREAMER_TEST_ORDERING=ticks) nothing is delivered
	// until a tick numbers it; in trigger mode the sequencer only asks.
	s.seq = sequencer.New(sequencer.Config{DatabaseURL: dbURL, Logger: log, ModeInterval: time.Second})
	require.NoError(t, s.seq.Start(ctx))
	t.Cleanup(s.seq.Stop)

	sc := o.server
	s.subscribes = &atomic.Int64{}
	srvLog := log
	if o.logOut != nil {
		srvLog = zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), o.logOut)).Level(zerolog.DebugLevel)
	}
	sc.Addr, sc.Dispatcher, sc.DB, sc.Listener, sc.Logger = "127.0.0.1:0", countingDispatcher{s.disp, s.subscribes}, pool, s.lis, srvLog
	s.srv = server.New(sc)
	require.NoError(t, s.srv.Start(ctx))
	s.shutdown = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.srv.Shutdown(ctx))
	}
	t.Cleanup(s.shutdown)
	s.url = "http://" + s.srv.Addr()
	return s
}

// publish inserts one event in its own transaction and returns its id.
func (s *stack) publish(t testing.TB, stream, data string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, s.pool.QueryRow(context.Background(),
		"SELECT streamer.publish($1, $2)", stream, data).Scan(&id))
	return id
}

// sequence numbers every committed event now: in ticks mode it records a
// tick (as the sequencer would a few milliseconds later); in trigger mode
// events are numbered at COMMIT and it does nothing.
func (s *stack) sequence(t testing.TB) {
	t.Helper()
	pgtest.Tick(t, s.pool)
}

// waitLive waits until n subscribers are live in the registry.
func (s *stack) waitLive(t testing.TB, n int) {
	t.Helper()
	for s.reg.Len() < n {
		s.dsig.Live.WaitOrTimeout(t)
	}
}

// waitLiveAtLeast waits until stream has a live subscriber.
func (s *stack) waitLiveAtLeast(t testing.TB, stream string) {
	t.Helper()
	for len(s.reg.Lookup(stream)) == 0 {
		s.dsig.Live.WaitOrTimeout(t)
	}
}
