package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/dispatch"
	"github.com/streamer-dev/streamer/internal/server"
)

func TestListenerFailure(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	pid := s.lsig.Listening.WaitOrTimeout(t)
	c := subscribe(t, s.url, []string{"lf"}, "")
	s.waitLive(t, 1)
	s.publish(t, "lf", "before")
	require.Equal(t, "before", c.next().Data)

	_, err := s.pool.Exec(ctx, "SELECT pg_terminate_backend($1)", int32(pid))
	require.NoError(t, err)
	for i := range 5 { // inserted while the listener is down or reconnecting
		s.publish(t, "lf", "during-"+strconv.Itoa(i))
	}
	s.lsig.BackoffError.WaitOrTimeout(t)
	require.NotEqual(t, pid, s.lsig.Listening.WaitOrTimeout(t))
	for i := range 5 {
		require.Equal(t, "during-"+strconv.Itoa(i), c.next().Data)
	}
	s.publish(t, "lf", "after")
	require.Equal(t, "after", c.next().Data)
}

// TestSlowClient is not parallel: it measures the process's heap.
func TestSlowClient(t *testing.T) {
	s := setup(t, func(o *stackOpts) { o.server.MaxQueueBytes = 256 << 10 })
	good := subscribe(t, s.url, []string{"slow"}, "")

	// A client that sends its request and never reads.
	conn, err := net.Dial("tcp", s.srv.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "GET /events?stream=slow HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	s.waitLive(t, 2)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	payload := strings.Repeat("x", 256<<10)
	const n = 100      // 25 MiB: more than the queue and the socket buffers hold
	for i := range n { // in lockstep with the good client, so only the slow one lags
		s.publish(t, "slow", strconv.Itoa(i)+payload)
		ev := good.next()
		require.True(t, strings.HasPrefix(ev.Data, strconv.Itoa(i)+"x"))
	}
	// The slow one was dropped: only the good subscriber is left.
	require.Equal(t, 1, s.reg.Len())
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	// 25 MiB went through; what stays is at most the good client's queue.
	require.Less(t, int64(after.HeapAlloc)-int64(before.HeapAlloc), int64(16<<20), "heap grew without bound")
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	s := setup(t, func(o *stackOpts) { o.server.MaxStreams = 3 })
	for _, tc := range []struct {
		name   string
		q      url.Values
		lastID string
		want   string
	}{
		{"missing stream", url.Values{}, "", "missing stream"},
		{"empty stream", url.Values{"stream": {""}}, "", "invalid stream"},
		{"invalid stream", url.Values{"stream": {"a b"}}, "", "invalid stream"},
		{"stream starting with a dash", url.Values{"stream": {"-a"}}, "", "invalid stream"},
		{"stream too long", url.Values{"stream": {strings.Repeat("a", 201)}}, "", "invalid stream"},
		{"too many streams", url.Values{"stream": {"a", "b", "c", "d"}}, "", "too many streams"},
		{"malformed token header", url.Values{"stream": {"a"}}, "12x", "malformed resume token"},
		{"malformed token query", url.Values{"stream": {"a"}, "last_event_id": {"-1"}}, "", "malformed resume token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, resp := dial(t, s.url, tc.q, tc.lastID)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var body struct{ Error string }
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			require.Contains(t, body.Error, tc.want)
		})
	}

	t.Run("data that looks like SSE fields arrives as one event", func(t *testing.T) {
		t.Parallel()
		c := subscribe(t, s.url, []string{"inject"}, "")
		s.waitLiveAtLeast(t, "inject")
		s.publish(t, "inject", "\n\nevent: x\ndata: y\r\nid: 9")
		s.publish(t, "inject", "cr\rlf\ncrlf\r\nend\n")
		ev := c.next()
		require.Equal(t, "\n\nevent: x\ndata: y\nid: 9", ev.Data)
		require.Empty(t, ev.Event)
		require.Equal(t, "cr\nlf\ncrlf\nend\n", c.next().Data)
	})
}

func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	s := setup(t, func(o *stackOpts) { o.server.MaxConnections = 2 })
	subscribe(t, s.url, []string{"a"}, "")
	subscribe(t, s.url, []string{"a"}, "")
	_, resp := dial(t, s.url, url.Values{"stream": {"a"}}, "")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	var body struct{ Error string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Contains(t, body.Error, "connection limit")
}

func TestHeadersAndPreamble(t *testing.T) {
	t.Parallel()
	s := setup(t, func(o *stackOpts) { o.server.Retry = 1500 * 1e6 })
	resp, err := http.Get(s.url + "/events?stream=p")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	require.Equal(t, "no", resp.Header.Get("X-Accel-Buffering"))
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n') // flushed at once, before any event
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(line, ":"), line)
	line, err = br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "retry: 1500\n", line)
}

func TestHealth(t *testing.T) {
	t.Parallel()
	s := setup(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(s.url + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	s.lis.Stop()
	resp, err := http.Get(s.url + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	s := setup(t)
	c := subscribe(t, s.url, []string{"sd"}, "")
	s.waitLive(t, 1)
	s.publish(t, "sd", "last")
	require.Equal(t, "last", c.next().Data)

	s.shutdown()
	rest := c.ended()
	require.Len(t, rest, 1)
	require.Equal(t, "streamer.shutdown", rest[0].Event)
	require.Empty(t, rest[0].ID, "the shutdown event must not move the client's resume point")
	require.Equal(t, 0, s.srv.OpenStreams())

	_, err := http.Get(s.url + "/events?stream=sd")
	require.Error(t, err, "no new connections after shutdown")
}

var _ = dispatch.ErrStopped
var _ server.Config

// TestHandlerGoroutinePath runs streams the way HTTP/2 must: from the
// handler's goroutine, without taking the connection over.
func TestHandlerGoroutinePath(t *testing.T) {
	t.Parallel()
	s := setup(t, func(o *stackOpts) { o.server.NoHijack = true })
	c := subscribe(t, s.url, []string{"h2"}, "")
	s.waitLive(t, 1)
	for i := range 100 {
		s.publish(t, "h2", strconv.Itoa(i))
	}
	got := c.take(100)
	requireOrdered(t, got)
	c.close()

	s.publish(t, "h2", "missed")
	r := subscribe(t, s.url, []string{"h2"}, got[99].ID)
	require.Equal(t, "missed", r.next().Data)

	s.shutdown()
	rest := r.ended()
	require.Len(t, rest, 1)
	require.Equal(t, "streamer.shutdown", rest[0].Event)
}
