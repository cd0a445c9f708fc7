package sse

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/startstop/startstoptest"
)

// attached returns a Conn attached to a started hub over a real loopback
// TCP connection, the client's end, and a channel that receives the close
// cause passed to onClose.
func attached(t *testing.T, opts Options) (*Conn, net.Conn, <-chan error) {
	t.Helper()
	h := NewHub(HubOptions{Workers: 2, PeekInterval: time.Second})
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(h.Stop)
	return attachTo(t, h, opts)
}

// attachTo attaches a new Conn to h over a real loopback TCP connection
// and returns it, the client's end, and a channel that receives the close
// cause passed to onClose.
func attachTo(t *testing.T, h *Hub, opts Options) (*Conn, net.Conn, <-chan error) {
	t.Helper()
	client, server := loopback(t)
	c := NewConn(httptest.NewRecorder(), opts)
	closed := make(chan error, 1)
	c.Attach(h, server, func(err error) { closed <- err })
	return c, client, closed
}

func TestHubWritesInOrder(t *testing.T) {
	t.Parallel()
	c, client, _ := attached(t, Options{})
	var want strings.Builder
	for i := range 1000 {
		f := AppendEvent(nil, "", "", strings.Repeat("x", i%50))
		want.Write(f)
		require.True(t, c.Enqueue(f))
	}
	got := make([]byte, want.Len())
	_, err := io.ReadFull(client, got)
	require.NoError(t, err)
	require.Equal(t, want.String(), string(got))
}

func TestHubSlowConsumer(t *testing.T) {
	t.Parallel()
	c, _, closed := attached(t, Options{MaxQueueBytes: 64 << 10})
	frame := AppendEvent(nil, "", "", strings.Repeat("x", 16<<10))
	var slowest time.Duration
	for c.Err() == nil {
		began := time.Now()
		c.Enqueue(frame)
		slowest = max(slowest, time.Since(began))
	}
	require.ErrorIs(t, <-closed, ErrSlowConsumer)
	require.Less(t, slowest, 100*time.Millisecond, "Enqueue waited on the network")
}

func TestHubWriteStall(t *testing.T) {
	t.Parallel()
	// The queue bound is out of reach; the write deadline ends it.
	c, _, closed := attached(t, Options{MaxQueueBytes: 1 << 30, WriteTimeout: 300 * time.Millisecond})
	frame := AppendEvent(nil, "", "", strings.Repeat("x", 64<<10))
	go func() {
		for c.Enqueue(frame) {
			time.Sleep(time.Millisecond) // a steady producer
		}
	}()
	err := <-closed
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.ErrorContains(t, err, "no progress")
}

func TestHubHeartbeat(t *testing.T) {
	t.Parallel()
	_, client, _ := attached(t, Options{Heartbeat: time.Millisecond})
	line, err := bufio.NewReader(client).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, ": ping\n", line)
}

// unwatchedHub returns a started hub that peeks at quiet Conns instead of
// watching them, as on a platform without epoll.
func unwatchedHub(t *testing.T, opts HubOptions) *Hub {
	t.Helper()
	h := NewHub(opts)
	h.noWatch = true
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(h.Stop)
	return h
}

// TestHubPeerClosed: a quiet Conn whose client went away is closed with
// ErrPeerClosed, whether the hub watches it (epoll) or peeks at it.
func TestHubPeerClosed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		reset bool // the client resets the connection instead of closing it
		hub   func(t *testing.T) *Hub
	}{
		{"peeked", false, func(t *testing.T) *Hub { return unwatchedHub(t, HubOptions{PeekInterval: time.Second}) }},
		{"peeked/reset", true, func(t *testing.T) *Hub { return unwatchedHub(t, HubOptions{PeekInterval: time.Second}) }},
		{"default", false, func(t *testing.T) *Hub { return startedHub(t, HubOptions{PeekInterval: time.Second}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, client, closed := attachTo(t, tc.hub(t), Options{})
			if tc.reset {
				require.NoError(t, client.(*net.TCPConn).SetLinger(0))
			}
			require.NoError(t, client.Close())
			require.ErrorIs(t, recv(t, closed, "closed peer not noticed"), ErrPeerClosed)
			require.ErrorIs(t, c.Err(), ErrPeerClosed)
		})
	}
}

func startedHub(t *testing.T, opts HubOptions) *Hub {
	t.Helper()
	h := NewHub(opts)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(h.Stop)
	return h
}

// TestHubPeerClosedWhileWritten: a Conn written to often is not peeked at;
// its departed client is noticed by the writes themselves (where the hub
// does not watch its Conns: see TestHubWatchesClose).
func TestHubPeerClosedWhileWritten(t *testing.T) {
	t.Parallel()
	c, client, closed := attachTo(t, unwatchedHub(t, HubOptions{Workers: 2, PeekInterval: time.Second}), Options{})
	require.NoError(t, client.Close())
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case err := <-closed:
			require.NotErrorIs(t, err, ErrPeerClosed, "noticed by a peek, not by a write")
			require.ErrorContains(t, err, "sse: write")
			return
		case <-tick.C:
			c.Enqueue([]byte("data: x\n\n"))
		case <-timeout:
			t.Fatal("closed peer not noticed")
		}
	}
}

func TestHubCloseAfter(t *testing.T) {
	t.Parallel()
	c, client, closed := attached(t, Options{})
	require.True(t, c.Enqueue([]byte("a\n")))
	c.CloseAfter([]byte("bye\n"))
	require.False(t, c.Enqueue([]byte("late\n")))
	all, err := io.ReadAll(client)
	require.NoError(t, err)
	require.Equal(t, "a\nbye\n", string(all))
	require.ErrorIs(t, <-closed, ErrClosed)
}

func TestHubStopClosesConns(t *testing.T) {
	t.Parallel()
	h := NewHub(HubOptions{})
	require.NoError(t, h.Start(context.Background()))
	_, client, closed := attachTo(t, h, Options{})
	require.Equal(t, 1, h.Len())

	h.Stop()
	h.Stop()
	require.ErrorIs(t, <-closed, ErrClosed)
	_, err := io.ReadAll(client)
	require.NoError(t, err) // EOF: the server end was closed
	require.Equal(t, 0, h.Len())
}

func TestHubLifecycle(t *testing.T) {
	t.Parallel()
	startstoptest.Stress(t, NewHub(HubOptions{Workers: 3}))
}

// TestHubSecondStart: a second Start while running starts no second pool of
// workers, and Stop leaves none running.
func TestHubSecondStart(t *testing.T) {
	t.Parallel()
	h := NewHub(HubOptions{Workers: 3})
	require.Zero(t, h.Stats().Goroutines)
	require.NoError(t, h.Start(context.Background()))
	require.NoError(t, h.Start(context.Background()))
	require.Equal(t, 3+1+closeWatchers, h.Stats().Goroutines, "three workers, the sweeper and the close watcher")
	h.Stop()
	require.Zero(t, h.Stats().Goroutines)
}

// TestHubRestart: a hub stopped and started again serves new Conns.
func TestHubRestart(t *testing.T) {
	t.Parallel()
	h := NewHub(HubOptions{})
	require.NoError(t, h.Start(context.Background()))
	h.Stop()
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(h.Stop)
	client, server := loopback(t)
	c := NewConn(httptest.NewRecorder(), Options{})
	c.Attach(h, server, func(error) {})
	require.True(t, c.Enqueue([]byte("hello\n")))
	line, err := bufio.NewReader(client).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "hello\n", line)
}

// TestHubCancelStops: ending Start's context stops the hub like Stop.
func TestHubCancelStops(t *testing.T) {
	t.Parallel()
	h := NewHub(HubOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, h.Start(ctx))
	_, client, closed := attachTo(t, h, Options{})
	cancel()
	<-h.Stopped()
	require.ErrorIs(t, <-closed, ErrClosed)
	_, err := io.ReadAll(client)
	require.NoError(t, err)
	require.Equal(t, HubStats{}, h.Stats())
}

// loopback returns both ends of a loopback TCP connection, closed at
// cleanup.
func loopback(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { server.Close() })
	return client, server
}

// TestHubAttachAfterStop: a connection handed to a stopped hub is refused
// at once: onClose runs with ErrHubStopped and the socket is closed, so
// nothing waits on a Conn that no worker will ever write.
func TestHubAttachAfterStop(t *testing.T) {
	t.Parallel()
	h := NewHub(HubOptions{})
	require.NoError(t, h.Start(context.Background()))
	h.Stop()

	c, client, closed := attachTo(t, h, Options{})
	require.ErrorIs(t, recv(t, closed, "Attach after Stop: onClose never ran"), ErrHubStopped)
	require.ErrorIs(t, c.Err(), ErrHubStopped)
	require.NoError(t, client.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := io.ReadAll(client)
	require.NoError(t, err, "EOF: the server end was closed")
	require.Zero(t, h.Len())
}

// TestHubHijack: Hijack writes the HTTP/1.1 response head with the
// ResponseWriter's headers and hands the connection to the hub, which then
// writes the body until the Conn closes.
func TestHubHijack(t *testing.T) {
	t.Parallel()
	h := NewHub(HubOptions{})
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(h.Stop)
	hijacked := make(chan error, 1)
	conns := make(chan *Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		c := NewConn(w, Options{})
		c.Enqueue(AppendComment(nil, "hello")) // checked in the body read below
		hijacked <- c.Hijack(h, func(error) {})
		conns <- c
	}))
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, <-hijacked)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	require.NotEmpty(t, resp.Header.Get("Date"))
	c := <-conns
	c.CloseAfter(AppendEvent(nil, "1", "", "bye"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, ": hello\n"+"id: 1\ndata: bye\n\n", string(body))
}

// TestHubHijackRefused: a ResponseWriter that cannot be hijacked (HTTP/2,
// a recorder) leaves the Conn to its caller: an error, no onClose.
func TestHubHijackRefused(t *testing.T) {
	t.Parallel()
	h := NewHub(HubOptions{})
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(h.Stop)
	c := NewConn(httptest.NewRecorder(), Options{})
	called := false
	err := c.Hijack(h, func(error) { called = true })
	require.ErrorIs(t, err, http.ErrNotSupported)
	require.False(t, called)
	require.NoError(t, c.Err(), "the caller still owns the Conn")
	require.Zero(t, h.Len())
}

func TestAppendResponseHead(t *testing.T) {
	t.Parallel()
	hdr := http.Header{"Content-Type": {"text/event-stream"}, "X-Accel-Buffering": {"no"}}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got := string(appendResponseHead([]byte("x"), hdr, now))
	require.Equal(t, "x"+"HTTP/1.1 200 OK\r\n"+
		"Connection: close\r\n"+
		"Content-Type: text/event-stream\r\n"+
		"Date: Fri, 02 Jan 2026 03:04:05 GMT\r\n"+
		"X-Accel-Buffering: no\r\n\r\n", got)
	require.NotContains(t, hdr, "Connection", "the caller's header is not changed")
}
