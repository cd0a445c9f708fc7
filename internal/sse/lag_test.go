package sse

import (
	"context"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lagRecorder is a LagObserver that keeps what it is told and signals
// each observation on seen.
type lagRecorder struct {
	mu   sync.Mutex
	lags []time.Duration
	seen chan struct{} // one send per observation, never blocking
}

func newLagRecorder() *lagRecorder { return &lagRecorder{seen: make(chan struct{}, 1024)} }

func (r *lagRecorder) DeliveryLag(d time.Duration) {
	r.mu.Lock()
	r.lags = append(r.lags, d)
	r.mu.Unlock()
	select {
	case r.seen <- struct{}{}:
	default:
	}
}

func (r *lagRecorder) observed() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.lags...)
}

// hubOverTinySocket attaches a Conn to a started hub over loopback TCP
// whose buffers are 64 KiB (the client does not read until the test
// says so), and returns the client's end and the onClose cause channel.
func hubOverTinySocket(t *testing.T, opts Options) (*Conn, net.Conn, <-chan error) {
	t.Helper()
	h := NewHub(HubOptions{Workers: 2, PeekInterval: time.Minute})
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(h.Stop)
	client, server := loopback(t)
	require.NoError(t, client.(*net.TCPConn).SetReadBuffer(64<<10))
	require.NoError(t, server.(*net.TCPConn).SetWriteBuffer(64<<10))
	c := NewConn(httptest.NewRecorder(), opts)
	closed := make(chan error, 1)
	c.Attach(h, server, func(err error) { closed <- err })
	return c, client, closed
}

// filler is more than the tiny sockets of hubOverTinySocket buffer (their
// windows were advertised before the buffers were set: a few hundred KiB).
var filler = AppendEvent(nil, "", "", strings.Repeat("f", 1<<20))

// TestLagObservedAtSocketWrite: an event queued behind a write the client
// is not reading is observed only once it is written, with the time it
// waited in the queue. Observed at Enqueue, it would be seen before the
// client reads and its lag would not include the wait.
func TestLagObservedAtSocketWrite(t *testing.T) {
	t.Parallel()
	// check waits for the observation and bounds it: from the commit to
	// when the client began to read at least, and to now at most.
	check := func(t *testing.T, rec *lagRecorder, committed, drained time.Time) {
		t.Helper()
		recv(t, rec.seen)
		upper := time.Since(committed)
		lags := rec.observed()
		require.Len(t, lags, 1, "one observation per event frame; none for the filler")
		require.GreaterOrEqual(t, lags[0], drained.Sub(committed), "the lag includes the wait for the socket")
		require.LessOrEqual(t, lags[0], upper)
	}

	t.Run("hub writer", func(t *testing.T) {
		t.Parallel()
		rec := newLagRecorder()
		c, client, _ := hubOverTinySocket(t, Options{MaxQueueBytes: 64 << 20, WriteTimeout: time.Minute, Lag: rec})
		ev := AppendEvent(nil, "1", "", "late")
		committed := time.Now().Add(-time.Millisecond)
		require.True(t, c.Enqueue(filler))
		require.True(t, c.EnqueueAt(ev, committed))
		require.Empty(t, rec.observed(), "observed before the frame reached the socket")
		// The batch (filler and event) is taken and its write stalled: the
		// hub set the Conn aside for the sweeper to retry.
		h := c.hc.Load().h
		require.Eventually(t, func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return len(h.stalled) == 1
		}, waitLimit, time.Millisecond)
		require.Empty(t, rec.observed(), "observed before the frame reached the socket")

		drained := time.Now()
		got := make([]byte, len(filler)+len(ev))
		_, err := io.ReadFull(client, got)
		require.NoError(t, err)
		require.Equal(t, string(ev), string(got[len(filler):]))
		check(t, rec, committed, drained)
	})

	t.Run("handler writer", func(t *testing.T) {
		t.Parallel()
		rec := newLagRecorder()
		w := &gatedWriter{entered: make(chan struct{}, 4), release: make(chan struct{})}
		c := NewConn(w, Options{Lag: rec})
		ran := make(chan error, 1)
		go func() { ran <- c.Run(context.Background()) }()

		committed := time.Now().Add(-time.Millisecond)
		require.True(t, c.EnqueueAt(event("1", "late"), committed))
		recv(t, w.entered) // Run is inside the Write, which waits for release
		require.Empty(t, rec.observed(), "observed before the write returned")
		drained := time.Now()
		close(w.release)
		check(t, rec, committed, drained)
		c.Close(nil)
		require.ErrorIs(t, recv(t, ran), ErrClosed)
	})
}

// TestLagNotObservedWhenNotWritten: frames dropped by a close (slow
// consumer) or stuck in a write that times out never reached the client,
// so no lag is observed for them; nor for frames queued without a commit
// time.
func TestLagNotObservedWhenNotWritten(t *testing.T) {
	t.Parallel()
	committed := time.Now()

	t.Run("hub: write timeout", func(t *testing.T) {
		t.Parallel()
		rec := newLagRecorder()
		c, _, closed := hubOverTinySocket(t, Options{MaxQueueBytes: 64 << 20, WriteTimeout: 200 * time.Millisecond, Lag: rec})
		require.True(t, c.Enqueue(filler))
		require.True(t, c.EnqueueAt(event("1", "never read"), committed))
		require.ErrorIs(t, recv(t, closed), os.ErrDeadlineExceeded)
		require.Empty(t, rec.observed())
	})

	t.Run("hub: slow consumer", func(t *testing.T) {
		t.Parallel()
		rec := newLagRecorder()
		c, _, closed := hubOverTinySocket(t, Options{MaxQueueBytes: len(filler) + 1<<10, WriteTimeout: time.Minute, Lag: rec})
		require.True(t, c.Enqueue(filler))
		require.True(t, c.EnqueueAt(event("1", "in the stuck batch or queued"), committed))
		require.False(t, c.Enqueue(filler), "over the bound")
		require.ErrorIs(t, recv(t, closed), ErrSlowConsumer)
		require.Empty(t, rec.observed())
	})

	t.Run("handler: write error", func(t *testing.T) {
		t.Parallel()
		rec := newLagRecorder()
		c := NewConn(&discardWriter{failAt: 1}, Options{Lag: rec})
		require.True(t, c.EnqueueAt(event("1", "x"), committed))
		require.ErrorIs(t, c.Run(context.Background()), errBroken)
		require.Empty(t, rec.observed())
	})

	t.Run("handler: frames without a commit time", func(t *testing.T) {
		t.Parallel()
		rec := newLagRecorder()
		w := &discardWriter{}
		c := NewConn(w, Options{Lag: rec})
		require.True(t, c.Enqueue(event("1", "x")))
		require.NoError(t, c.EnqueueWait(context.Background(), event("2", "replayed")))
		require.True(t, c.EnqueueAt(event("3", "y"), time.Time{}))
		c.CloseAfter(event("4", "last"))
		require.ErrorIs(t, c.Run(context.Background()), ErrClosed)
		require.EqualValues(t, 1, w.writes.Load(), "all four written")
		require.Empty(t, rec.observed())
	})
}
