package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/dispatch"
	"github.com/streamer-dev/streamer/internal/server"
	"github.com/streamer-dev/streamer/internal/sse"
	"github.com/streamer-dev/streamer/internal/startstop/startstoptest"
	"github.com/streamer-dev/streamer/internal/testnet"
	"github.com/streamer-dev/streamer/internal/testsignal"
)

// TestServeFailureEndsServer: when Serve fails the server must not stay up
// serving nothing while /readyz says ready (issue #10, bug a).
func TestServeFailureEndsServer(t *testing.T) {
	t.Parallel()
	lnc := make(chan *testnet.Breakable, 1)
	s := setup(t, func(o *stackOpts) { o.server.Listen = testnet.ListenBreakable(lnc) })
	ln := <-lnc
	readyz := func() int {
		rec := httptest.NewRecorder()
		s.srv.Routes().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code
	}
	require.Equal(t, http.StatusOK, readyz())

	require.NoError(t, ln.Break())
	testsignal.Receive(t, s.srv.Stopped(), 10*time.Second, "the server did not stop after Serve failed")
	require.ErrorIs(t, s.srv.Err(), testnet.ErrAcceptBroken)
	require.Equal(t, http.StatusServiceUnavailable, readyz(), "/readyz still ready after Serve failed")
	require.NoError(t, s.srv.Shutdown(context.Background()), "not running: nothing to drain")
}

// fakeDispatcher accepts every subscriber and queues frame on it; it
// stands in for the dispatcher where a test needs no database.
type fakeDispatcher struct {
	frame []byte
}

func (d *fakeDispatcher) Subscribe(_ context.Context, sub dispatch.Subscriber, _ []string, _ *cursor.Position, _ []string) (cursor.Position, error) {
	sub.Enqueue(d.frame)
	return cursor.Position{}, nil
}

func (d *fakeDispatcher) Unsubscribe(dispatch.Subscriber) {}

// newServer starts a server without a database on loopback.
func newServer(t *testing.T, cfg server.Config) *server.Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Dispatcher == nil {
		cfg.Dispatcher = &fakeDispatcher{}
	}
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	srv := server.New(cfg)
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(srv.Stop)
	return srv
}

func TestServerLifecycle(t *testing.T) {
	t.Parallel()
	startstoptest.Stress(t, server.New(server.Config{Addr: "127.0.0.1:0", Logger: zerolog.Nop()}))
}

// TestServerRestart: a server stopped and started again serves streams.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	srv := newServer(t, server.Config{Dispatcher: &fakeDispatcher{frame: []byte("data: hi\n\n")}})
	srv.Stop()
	require.NoError(t, srv.Start(context.Background()))
	resp, err := http.Get("http://" + srv.Addr() + "/events?stream=a")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		if line == "data: hi\n" {
			break
		}
	}
}

// TestShutdownHonoursDeadline: streams that cannot take their goodbye (the
// client reads nothing, with a small fixed receive buffer, and an 8 MiB
// frame fills every buffer) do not hold Shutdown past its deadline; it
// reports them, and hijacked ones are closed.
func TestShutdownHonoursDeadline(t *testing.T) {
	t.Parallel()
	for _, noHijack := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoHijack=%v", noHijack), func(t *testing.T) {
			t.Parallel()
			big := sse.AppendEvent(nil, "", "", strings.Repeat("x", 8<<20))
			srv := newServer(t, server.Config{NoHijack: noHijack, WriteTimeout: time.Hour, MaxQueueBytes: 64 << 20,
				Dispatcher: &fakeDispatcher{frame: big}})
			nc, err := net.Dial("tcp", srv.Addr())
			require.NoError(t, err)
			t.Cleanup(func() { nc.Close() })
			// Fixed, so that the kernel does not grow it to take the frame.
			require.NoError(t, nc.(*net.TCPConn).SetReadBuffer(4<<10))
			_, err = fmt.Fprintf(nc, "GET /events?stream=a HTTP/1.1\r\nHost: x\r\n\r\n")
			require.NoError(t, err)
			// Read the response head: the stream is open and its writer is
			// blocked on the frame the client never reads.
			line, err := bufio.NewReader(nc).ReadString('\n')
			require.NoError(t, err)
			require.Equal(t, "HTTP/1.1 200 OK\r\n", line)

			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- srv.Shutdown(ctx) }()
			err = testsignal.Receive(t, done, 10*time.Second, "Shutdown did not return after its deadline")
			require.ErrorIs(t, err, context.DeadlineExceeded)
			if !noHijack {
				require.ErrorContains(t, err, "1 streams still open at the shutdown deadline")
			}
			if !noHijack {
				require.Zero(t, srv.OpenStreams(), "the hub closed the hijacked stream")
				require.Equal(t, sse.HubStats{}, srv.HubStats())
			}
		})
	}
}
