package sse

import (
	"context"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestHeldRun: frames queued with EnqueueHeld do not wake Run; Release
// does, and so does a held queue that reaches the hold bound. Run is held
// inside a gated write meanwhile, so its pending wake-up is what shows
// whether it was woken.
func TestHeldRun(t *testing.T) {
	t.Parallel()

	t.Run("Release wakes the writer, EnqueueHeld does not", func(t *testing.T) {
		t.Parallel()
		c, w, ran := runGated(t, Options{}) // Run is inside Write("A")
		require.True(t, c.EnqueueHeld([]byte("B"), time.Now()))
		require.True(t, c.EnqueueHeld([]byte("C"), time.Now()))
		require.Empty(t, c.wake, "EnqueueHeld woke the writer")
		c.Release()
		require.Len(t, c.wake, 1, "Release did not wake the writer")
		c.Release() // nothing held: nothing to do
		c.CloseAfter([]byte("D"))
		close(w.release)

		require.ErrorIs(t, recv(t, ran), ErrClosed)
		require.Equal(t, []string{"A", "BCD"}, w.writes)
	})

	t.Run("a held queue at the hold bound wakes the writer", func(t *testing.T) {
		t.Parallel()
		c, w, ran := runGated(t, Options{MaxQueueBytes: 8 << 10}) // holds up to 4 KiB
		frame := []byte(strings.Repeat("x", 3<<10))
		require.True(t, c.EnqueueHeld(frame, time.Time{}))
		require.Empty(t, c.wake, "3 KiB held woke the writer")
		require.True(t, c.EnqueueHeld(frame, time.Time{}))
		require.Len(t, c.wake, 1, "6 KiB held did not wake the writer")
		c.Close(nil)
		close(w.release)
		require.ErrorIs(t, recv(t, ran), ErrClosed)
	})
}

// TestHeldHub: a hub worker writes a Conn's held frames only after
// Release. One worker serves the ready list in order, so once a frame
// queued on another Conn after the held ones has arrived, the held Conn
// would have been written first had EnqueueHeld scheduled it.
func TestHeldHub(t *testing.T) {
	t.Parallel()
	h := NewHub(HubOptions{Workers: 1, PeekInterval: time.Hour})
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(h.Stop)
	held, heldClient, _ := attachTo(t, h, Options{})
	other, otherClient, _ := attachTo(t, h, Options{})
	warmUp(t, held, heldClient)

	var want strings.Builder
	for i := range 10 {
		f := event("", strings.Repeat("h", i+1))
		want.Write(f)
		require.True(t, held.EnqueueHeld(f, time.Now()))
	}
	marker := event("", "other")
	require.True(t, other.Enqueue(marker))
	readN(t, otherClient, len(marker))
	require.Equal(t, want.Len(), held.QueuedBytes(), "held frames were written before Release")

	held.Release()
	require.Equal(t, want.String(), readN(t, heldClient, want.Len()))
}

// TestHeldHubBound: held frames that reach the hold bound are written
// without Release.
func TestHeldHubBound(t *testing.T) {
	t.Parallel()
	c, client, _ := attached(t, Options{MaxQueueBytes: 8 << 10}) // holds up to 4 KiB
	warmUp(t, c, client)
	frame := event("", strings.Repeat("x", 5<<10))
	require.True(t, c.EnqueueHeld(frame, time.Time{}))
	require.Equal(t, string(frame), readN(t, client, len(frame)))
}

// TestHeldIdle: a worker done with a batch gives a Conn up when only held
// frames are queued, and keeps it when others are.
func TestHeldIdle(t *testing.T) {
	t.Parallel()
	c := NewConn(httptest.NewRecorder(), Options{})
	hc := &hubConn{c: c, sched: true}
	idle := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !hc.idleLocked()
	}
	require.True(t, c.EnqueueHeld([]byte("held"), time.Time{}))
	require.True(t, idle(), "requeued for a held frame")
	hc.sched = true
	c.mu.Lock()
	c.held = false // as Release leaves it, without waking anybody
	c.mu.Unlock()
	require.False(t, idle(), "released frames left unwritten")
}

// warmUp writes a frame through c and reads it: from then on the hub has
// taken what Attach scheduled, and nothing but Release, the hold bound or
// a frame queued with Enqueue makes a worker take c's queue again.
func warmUp(t *testing.T, c *Conn, client net.Conn) {
	t.Helper()
	warm := event("", "warm-up")
	require.True(t, c.Enqueue(warm))
	readN(t, client, len(warm))
}

// readN reads exactly n bytes from r, failing after waitLimit.
func readN(t *testing.T, r net.Conn, n int) string {
	t.Helper()
	require.NoError(t, r.SetReadDeadline(time.Now().Add(waitLimit)))
	buf := make([]byte, n)
	_, err := io.ReadFull(r, buf)
	require.NoError(t, err)
	return string(buf)
}

// waitUnscheduled waits until no worker holds c (its hub took what it had to write
// and gave it up).
func waitUnscheduled(t *testing.T, c *Conn) {
	t.Helper()
	hc := c.hc.Load()
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !hc.sched
	}, waitLimit, time.Millisecond, "a worker keeps the Conn")
}

// TestReleaseWriteInline: ReleaseWrite writes the held frames on the
// caller's goroutine: it returns, with the frames on the socket, while
// the test holds the hub's lock, so that no worker could have been given
// the Conn (a push would block on that lock, and ReleaseWrite with it).
func TestReleaseWriteInline(t *testing.T) {
	t.Parallel()
	h := startedHub(t, HubOptions{Workers: 1, PeekInterval: time.Hour})
	c, client, _ := attachTo(t, h, Options{})
	warmUp(t, c, client)
	waitUnscheduled(t, c)

	var want strings.Builder
	for i := range 3 {
		f := event("", strings.Repeat("i", i+1))
		want.Write(f)
		require.True(t, c.EnqueueHeld(f, time.Now()))
	}
	h.mu.Lock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.ReleaseWrite()
	}()
	select {
	case <-done:
	case <-time.After(waitLimit):
		h.mu.Unlock()
		t.Fatal("ReleaseWrite handed the Conn to a worker")
	}
	got := readN(t, client, want.Len())
	h.mu.Unlock()
	require.Equal(t, want.String(), got)
	require.Zero(t, c.QueuedBytes())
	waitUnscheduled(t, c)
}

// TestReleaseWriteRest: what the non-blocking write cannot take (a batch
// larger than the small socket buffers here, below the hold bound) is
// written by a worker, in order, and frames queued meanwhile follow it.
func TestReleaseWriteRest(t *testing.T) {
	t.Parallel()
	h := startedHub(t, HubOptions{Workers: 1, PeekInterval: time.Hour})
	client, server := loopback(t)
	require.NoError(t, server.(*net.TCPConn).SetWriteBuffer(4<<10))
	require.NoError(t, client.(*net.TCPConn).SetReadBuffer(4<<10))
	c := NewConn(httptest.NewRecorder(), Options{})
	c.Attach(h, server, func(error) {})
	warmUp(t, c, client)
	waitUnscheduled(t, c)

	var want strings.Builder
	for i := range 9 {
		f := event("", strings.Repeat(string(rune('a'+i)), 6<<10))
		want.Write(f)
		require.True(t, c.EnqueueHeld(f, time.Now()))
	}
	c.ReleaseWrite()
	after := event("", "after")
	want.Write(after)
	require.True(t, c.Enqueue(after))
	require.Equal(t, want.String(), readN(t, client, want.Len()))
}

// TestReleaseWriteClosed: ReleaseWrite on a Conn closed meanwhile writes
// nothing and leaves the close to the hub, which runs onClose on a worker.
func TestReleaseWriteClosed(t *testing.T) {
	t.Parallel()
	h := startedHub(t, HubOptions{Workers: 1, PeekInterval: time.Hour})
	c, client, closed := attachTo(t, h, Options{})
	warmUp(t, c, client)
	require.True(t, c.EnqueueHeld(event("", "x"), time.Time{}))
	c.Close(nil)
	c.ReleaseWrite()
	require.ErrorIs(t, recv(t, closed, "not finished"), ErrClosed)
	require.NoError(t, client.SetReadDeadline(time.Now().Add(waitLimit)))
	rest, err := io.ReadAll(client)
	require.NoError(t, err)
	require.Empty(t, rest)
}
