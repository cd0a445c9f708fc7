package sse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gosse "github.com/tmaxmax/go-sse"

	"github.com/streamer-dev/streamer/internal/testsignal"
)

// waitLimit bounds every wait in these tests, so a bug fails instead of
// hanging.
const waitLimit = 10 * time.Second

// serverConfig configures the handler of setup's server.
type serverConfig struct {
	Options
	// Prepare runs on the handler goroutine after NewConn, before Run.
	// Use assert, not require, inside it.
	Prepare func(*Conn)
	// Gate, when set, holds Run back until it is closed.
	Gate chan struct{}
}

// bundle is a loopback SSE server whose handler runs one Conn per request.
type bundle struct {
	srv     *httptest.Server
	conns   chan *Conn // each handler's Conn, after Prepare
	runErrs chan error // each Run's result

	// Writes, flushes and bytes that Run made through the counting writer
	// (the handler's header flush is not counted).
	writes, flushes, bytes atomic.Int64
}

func setup(t *testing.T, cfg serverConfig) *bundle {
	t.Helper()
	b := &bundle{conns: make(chan *Conn, 16), runErrs: make(chan error, 16)}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		assert.NoError(t, http.NewResponseController(w).Flush()) // send the headers

		c := NewConn(&countingWriter{ResponseWriter: w, writes: &b.writes, flushes: &b.flushes, bytes: &b.bytes}, cfg.Options)
		if cfg.Prepare != nil {
			cfg.Prepare(c)
		}
		b.conns <- c
		if cfg.Gate != nil {
			select {
			case <-cfg.Gate:
			case <-r.Context().Done():
			}
		}
		b.runErrs <- c.Run(r.Context())
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// connect opens a subscription; the body is closed at cleanup.
func (b *bundle) connect(t *testing.T) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitLimit)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.srv.URL, nil)
	require.NoError(t, err)
	resp, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return resp
}

// recv receives from ch or fails the test after waitLimit, saying what it
// waited for with what.
func recv[T any](t *testing.T, ch <-chan T, what ...string) T {
	t.Helper()
	return testsignal.Receive(t, ch, waitLimit, strings.Join(append([]string{"timed out waiting"}, what...), ": "))
}

// eventStream parses a response body with go-sse on its own goroutine.
type eventStream struct {
	events chan wantEvent
	end    chan error // the parse result at EOF or error
}

func readEvents(t *testing.T, body io.Reader) *eventStream {
	s := &eventStream{events: make(chan wantEvent), end: make(chan error, 1)}
	ctx := t.Context()
	go func() {
		for ev, err := range gosse.Read(body, &gosse.ReadConfig{MaxEventSize: 8 << 20}) {
			if err != nil {
				s.end <- err
				return
			}
			select {
			case s.events <- wantEvent{ID: ev.LastEventID, Type: ev.Type, Data: ev.Data}:
			case <-ctx.Done():
				s.end <- ctx.Err()
				return
			}
		}
		s.end <- nil
	}()
	return s
}

func (s *eventStream) next(t *testing.T) wantEvent {
	t.Helper()
	return recv(t, s.events)
}

// requireEnd waits for the stream to end cleanly (EOF) with no more events.
func (s *eventStream) requireEnd(t *testing.T) {
	t.Helper()
	select {
	case ev := <-s.events:
		require.FailNow(t, "unexpected event", "%+v", ev)
	case err := <-s.end:
		require.NoError(t, err)
	case <-time.After(waitLimit):
		require.FailNow(t, "timed out waiting for the end of the stream")
	}
}

func event(id, data string) []byte { return AppendEvent(nil, id, "", data) }

// waitBlocked waits until an EnqueueWait caller is parked on c.
func waitBlocked(t *testing.T, c *Conn) {
	t.Helper()
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.room != nil
	}, waitLimit, time.Millisecond)
}

func TestInjectionOverHTTP(t *testing.T) {
	t.Parallel()

	serve := func(c *Conn) {
		assert.True(t, c.Enqueue(AppendEvent(nil, "1", "", injection)))
		assert.True(t, c.Enqueue(AppendEvent(nil, "2", "end", "done")))
	}
	want := []wantEvent{{ID: "1", Data: normalize(injection)}, {ID: "2", Type: "end", Data: "done"}}

	t.Run("go-sse client", func(t *testing.T) {
		t.Parallel()
		b := setup(t, serverConfig{Prepare: serve})

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.srv.URL, nil)
		require.NoError(t, err)
		client := &gosse.Client{HTTPClient: b.srv.Client(), Backoff: gosse.Backoff{MaxRetries: -1}}
		conn := client.NewConnection(req)
		got := make(chan wantEvent, 8)
		conn.SubscribeToAll(func(ev gosse.Event) {
			got <- wantEvent{ID: ev.LastEventID, Type: ev.Type, Data: ev.Data}
		})
		connected := make(chan error, 1)
		go func() { connected <- conn.Connect() }()

		require.Equal(t, want[0], recv(t, got))
		require.Equal(t, want[1], recv(t, got))
		cancel()
		require.ErrorIs(t, recv(t, connected), context.Canceled)
		require.ErrorIs(t, recv(t, b.runErrs), context.Canceled)
		require.Empty(t, got, "no event beyond the two sent")
	})

	t.Run("launchdarkly decoder", func(t *testing.T) {
		t.Parallel()
		b := setup(t, serverConfig{Prepare: func(c *Conn) {
			serve(c)
			c.CloseAfter(nil) // end the response after the two events
		}})

		resp := b.connect(t)
		require.Equal(t, want, parseLaunchDarkly(t, resp.Body))
		require.ErrorIs(t, recv(t, b.runErrs), ErrClosed)
	})
}

func TestConnCoalesces(t *testing.T) {
	t.Parallel()

	t.Run("frames queued before Run go out in one write", func(t *testing.T) {
		t.Parallel()
		const n = 5
		b := setup(t, serverConfig{Prepare: func(c *Conn) {
			for i := range n {
				assert.True(t, c.Enqueue(event(strconv.Itoa(i), fmt.Sprintf("frame %d", i))))
			}
		}})

		s := readEvents(t, b.connect(t).Body)
		c := recv(t, b.conns)
		for i := range n {
			require.Equal(t, wantEvent{ID: strconv.Itoa(i), Data: fmt.Sprintf("frame %d", i)}, s.next(t))
		}
		c.Close(nil)
		require.ErrorIs(t, recv(t, b.runErrs), ErrClosed)
		s.requireEnd(t)
		require.EqualValues(t, 1, b.writes.Load())
		require.EqualValues(t, 1, b.flushes.Load())
	})

	t.Run("frames queued during a write go out in the next one", func(t *testing.T) {
		t.Parallel()
		c, w, ran := runGated(t, Options{})
		require.True(t, c.Enqueue([]byte("B")))
		require.True(t, c.Enqueue([]byte("C")))
		require.True(t, c.Enqueue([]byte("D")))
		require.Equal(t, 4, c.QueuedBytes(), "bytes being written still count")
		c.CloseAfter([]byte("E"))
		close(w.release)

		require.ErrorIs(t, recv(t, ran), ErrClosed)
		require.Equal(t, []string{"A", "BCDE"}, w.writes)
		require.Equal(t, 2, w.flushes)
	})
}

// gatedWriter reports each Write on entered and blocks it until release is
// closed. Its fields are read only after Run returned.
type gatedWriter struct {
	discardWriter
	entered chan struct{}
	release chan struct{}
	writes  []string
	flushes int
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	w.entered <- struct{}{}
	<-w.release
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func (w *gatedWriter) Flush() { w.flushes++ }

// runGated starts Run on a Conn with opts writing to a gatedWriter, queues
// "A" and returns once Run is inside Write("A"), with Run's result channel.
func runGated(t *testing.T, opts Options) (*Conn, *gatedWriter, <-chan error) {
	t.Helper()
	w := &gatedWriter{entered: make(chan struct{}, 4), release: make(chan struct{})}
	c := NewConn(w, opts)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(context.Background()) }()
	require.True(t, c.Enqueue([]byte("A")))
	recv(t, w.entered)
	return c, w, ran
}

func TestConnEnqueue(t *testing.T) {
	t.Parallel()

	t.Run("accepts up to the bound, then closes as slow consumer", func(t *testing.T) {
		t.Parallel()
		c := NewConn(&discardWriter{}, Options{MaxQueueBytes: 10})
		require.True(t, c.Enqueue([]byte("1234")))
		require.True(t, c.Enqueue([]byte("5678")))
		require.True(t, c.Enqueue([]byte("90")))
		require.Equal(t, 10, c.QueuedBytes())
		require.NoError(t, c.Err())

		require.False(t, c.Enqueue([]byte("x")))
		require.ErrorIs(t, c.Err(), ErrSlowConsumer)
		require.Zero(t, c.QueuedBytes(), "queue dropped")
		select {
		case <-c.Done():
		default:
			require.FailNow(t, "Done not closed")
		}
		require.False(t, c.Enqueue([]byte("y")), "closed")
	})

	t.Run("frame larger than the bound fits an empty queue only", func(t *testing.T) {
		t.Parallel()
		c := NewConn(&discardWriter{}, Options{MaxQueueBytes: 10})
		require.True(t, c.Enqueue(make([]byte, 20)))
		require.False(t, c.Enqueue([]byte("x")))
		require.ErrorIs(t, c.Err(), ErrSlowConsumer)
	})

	t.Run("empty frame is accepted and ignored", func(t *testing.T) {
		t.Parallel()
		c := NewConn(&discardWriter{}, Options{MaxQueueBytes: 10})
		require.True(t, c.Enqueue(nil))
		require.Zero(t, c.QueuedBytes())
	})

	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		c := NewConn(&discardWriter{}, Options{Heartbeat: -1})
		require.Equal(t, Options{MaxQueueBytes: 1 << 20, WriteTimeout: 10 * time.Second}, c.opts)
	})

	t.Run("frames are never modified", func(t *testing.T) {
		t.Parallel()
		w := &discardWriter{keep: true}
		c := NewConn(w, Options{})
		frame := event("1", "shared")
		orig := string(frame)
		for range 3 {
			require.True(t, c.Enqueue(frame))
		}
		c.CloseAfter(frame)
		require.ErrorIs(t, c.Run(context.Background()), ErrClosed)
		require.Equal(t, orig, string(frame))
		require.Equal(t, strings.Repeat(orig, 4), w.buf.String())
	})

	t.Run("slow consumer over HTTP ends Run and drops the queue", func(t *testing.T) {
		t.Parallel()
		b := setup(t, serverConfig{
			Options: Options{MaxQueueBytes: 100},
			Prepare: func(c *Conn) {
				assert.True(t, c.Enqueue(event("1", strings.Repeat("a", 30)))) // 44 bytes
				assert.True(t, c.Enqueue(event("2", strings.Repeat("b", 30))))
				assert.False(t, c.Enqueue(event("3", strings.Repeat("c", 30))))
			},
		})
		s := readEvents(t, b.connect(t).Body)
		require.ErrorIs(t, recv(t, b.runErrs), ErrSlowConsumer)
		s.requireEnd(t)
		require.Zero(t, b.writes.Load())
	})
}

func TestConnEnqueueWait(t *testing.T) {
	t.Parallel()

	t.Run("waits until the writer drains", func(t *testing.T) {
		t.Parallel()
		first, second := event("1", strings.Repeat("a", 50)), event("2", "b")
		gate := make(chan struct{})
		b := setup(t, serverConfig{
			Options: Options{MaxQueueBytes: len(first)},
			Prepare: func(c *Conn) { assert.True(t, c.Enqueue(first)) },
			Gate:    gate,
		})
		s := readEvents(t, b.connect(t).Body)
		c := recv(t, b.conns)

		type result struct {
			err    error
			writes int64
		}
		done := make(chan result, 1)
		go func() {
			err := c.EnqueueWait(context.Background(), second)
			done <- result{err, b.writes.Load()}
		}()
		waitBlocked(t, c)
		close(gate) // let Run start

		res := recv(t, done)
		require.NoError(t, res.err)
		require.GreaterOrEqual(t, res.writes, int64(1), "accepted only after the first write")
		require.Equal(t, wantEvent{ID: "1", Data: strings.Repeat("a", 50)}, s.next(t))
		require.Equal(t, wantEvent{ID: "2", Data: "b"}, s.next(t))
		c.Close(nil)
		require.ErrorIs(t, recv(t, b.runErrs), ErrClosed)
	})

	// blocked returns a Conn with a full queue and an EnqueueWait parked on it.
	blocked := func(t *testing.T, ctx context.Context) (*Conn, <-chan error) {
		c := NewConn(&discardWriter{}, Options{MaxQueueBytes: 4})
		require.True(t, c.Enqueue([]byte("full")))
		res := make(chan error, 1)
		go func() { res <- c.EnqueueWait(ctx, []byte("x")) }()
		waitBlocked(t, c)
		return c, res
	}

	t.Run("returns ctx.Err when ctx ends", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		c, res := blocked(t, ctx)
		cancel()
		require.ErrorIs(t, recv(t, res), context.Canceled)
		require.NoError(t, c.Err(), "conn stays open")
		require.Equal(t, 4, c.QueuedBytes(), "frame not queued")
	})

	t.Run("returns ctx.Err when ctx is already done", func(t *testing.T) {
		t.Parallel()
		c := NewConn(&discardWriter{}, Options{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.ErrorIs(t, c.EnqueueWait(ctx, []byte("x")), context.Canceled)
		require.Zero(t, c.QueuedBytes())
	})

	t.Run("returns the close cause", func(t *testing.T) {
		t.Parallel()
		c, res := blocked(t, context.Background())
		cause := errors.New("shutting down")
		c.Close(cause)
		require.ErrorIs(t, recv(t, res), cause)
	})

	t.Run("returns ErrClosed after CloseAfter", func(t *testing.T) {
		t.Parallel()
		c, res := blocked(t, context.Background())
		c.CloseAfter(nil)
		require.ErrorIs(t, recv(t, res), ErrClosed)
		require.NoError(t, c.Err(), "draining, not closed")
	})

	t.Run("frame larger than the bound waits for an empty queue", func(t *testing.T) {
		t.Parallel()
		w := &discardWriter{keep: true}
		c := NewConn(w, Options{MaxQueueBytes: 4})
		require.True(t, c.Enqueue([]byte("head")))
		big := []byte(strings.Repeat("B", 40))
		res := make(chan error, 1)
		go func() { res <- c.EnqueueWait(context.Background(), big) }()
		waitBlocked(t, c)

		ran := make(chan error, 1)
		go func() { ran <- c.Run(context.Background()) }()
		require.NoError(t, recv(t, res))
		c.CloseAfter(nil)
		require.ErrorIs(t, recv(t, ran), ErrClosed)
		require.Equal(t, "head"+string(big), w.buf.String())
	})
}

func TestConnStalledClient(t *testing.T) {
	t.Parallel()

	// stall connects a client that never reads and enqueues a 16 KiB frame
	// about every millisecond (16 MiB/s, easy for a reading client) until
	// Enqueue refuses. It returns the conn, the number of frames accepted
	// and the slowest Enqueue.
	stall := func(t *testing.T, opts Options) (b *bundle, resp *http.Response, c *Conn, accepted int, slowest time.Duration) {
		b = setup(t, serverConfig{Options: opts})
		resp = b.connect(t) // the body is never read
		c = recv(t, b.conns)
		frame := event("x", strings.Repeat("x", 16<<10))
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		giveUp := time.After(5 * waitLimit)
		for {
			start := time.Now()
			ok := c.Enqueue(frame)
			slowest = max(slowest, time.Since(start))
			if !ok {
				return b, resp, c, accepted, slowest
			}
			accepted++
			select {
			case <-tick.C:
			case <-c.Done():
			case <-giveUp:
				require.FailNow(t, "conn never closed", "accepted %d frames", accepted)
			}
		}
	}

	t.Run("closed by the queue bound", func(t *testing.T) {
		t.Parallel()
		const bound = 1 << 20
		b, resp, c, accepted, slowest := stall(t, Options{MaxQueueBytes: bound, WriteTimeout: time.Minute})
		t.Logf("accepted %d frames, %d bytes written; slowest Enqueue %v", accepted, b.bytes.Load(), slowest)

		require.ErrorIs(t, c.Err(), ErrSlowConsumer)
		frameLen := len(event("x", strings.Repeat("x", 16<<10)))
		require.Greater(t, accepted*frameLen, bound, "the writer drained frames until the client's buffers were full")
		require.Less(t, slowest, 100*time.Millisecond)

		// Run is still stuck in Write (the deadline is a minute away); the
		// client going away unblocks it, and the first cause stands.
		require.NoError(t, resp.Body.Close())
		require.ErrorIs(t, recv(t, b.runErrs), ErrSlowConsumer)
	})

	t.Run("closed by the write deadline", func(t *testing.T) {
		t.Parallel()
		const timeout = 200 * time.Millisecond
		b, _, c, accepted, slowest := stall(t, Options{MaxQueueBytes: 1 << 30, WriteTimeout: timeout})
		t.Logf("accepted %d frames, %d bytes written; slowest Enqueue %v", accepted, b.bytes.Load(), slowest)

		err := recv(t, b.runErrs)
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.Equal(t, err, c.Err())
		require.Less(t, slowest, 100*time.Millisecond, "Enqueue kept returning while Write was blocked for %v", timeout)
	})
}

func TestConnHeartbeat(t *testing.T) {
	t.Parallel()

	b := setup(t, serverConfig{Options: Options{Heartbeat: 20 * time.Millisecond}})
	body := b.connect(t).Body
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(body)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-t.Context().Done():
				return
			}
		}
	}()
	waitLine := func(want string) {
		t.Helper()
		for {
			line, ok := <-lines
			require.True(t, ok, "stream ended before %q", want)
			if line == want {
				return
			}
			require.Contains(t, []string{": ping", ""}, line, "only pings while idle")
		}
	}

	c := recv(t, b.conns)
	waitLine(": ping")
	require.True(t, c.Enqueue(event("", "after the first ping")))
	waitLine("data: after the first ping")
	waitLine(": ping") // the timer keeps going after a write
	c.Close(nil)
	require.ErrorIs(t, recv(t, b.runErrs), ErrClosed)
	for range lines { // drain until the body ends
	}
}

func TestConnCloseAfter(t *testing.T) {
	t.Parallel()

	t.Run("writes the queue then the final frame in one write", func(t *testing.T) {
		t.Parallel()
		final := AppendEvent(nil, "F", "streamer.shutdown", strings.Repeat("f", 200))
		b := setup(t, serverConfig{
			Options: Options{MaxQueueBytes: 100},
			Prepare: func(c *Conn) {
				assert.True(t, c.Enqueue(event("A", "a")))
				assert.True(t, c.Enqueue(event("B", "b")))
				c.CloseAfter(final) // larger than MaxQueueBytes: not bounded
				assert.False(t, c.Enqueue(event("C", "c")), "refused while draining")
				assert.NoError(t, c.Err(), "draining is not closed")
			},
		})
		s := readEvents(t, b.connect(t).Body)
		require.Equal(t, "A", s.next(t).ID)
		require.Equal(t, "B", s.next(t).ID)
		require.Equal(t, wantEvent{ID: "F", Type: "streamer.shutdown", Data: strings.Repeat("f", 200)}, s.next(t))
		s.requireEnd(t)
		require.ErrorIs(t, recv(t, b.runErrs), ErrClosed)
		require.EqualValues(t, 1, b.writes.Load())
		require.EqualValues(t, 1, b.flushes.Load())
	})

	t.Run("while running", func(t *testing.T) {
		t.Parallel()
		b := setup(t, serverConfig{})
		s := readEvents(t, b.connect(t).Body)
		c := recv(t, b.conns)

		require.True(t, c.Enqueue(event("A", "a")))
		require.Equal(t, "A", s.next(t).ID)
		require.True(t, c.Enqueue(event("B", "b")))
		c.CloseAfter(event("F", "bye"))
		require.False(t, c.Enqueue(event("C", "c")))
		require.Equal(t, "B", s.next(t).ID)
		require.Equal(t, wantEvent{ID: "F", Data: "bye"}, s.next(t))
		s.requireEnd(t)
		require.ErrorIs(t, recv(t, b.runErrs), ErrClosed)
		require.ErrorIs(t, c.Err(), ErrClosed)
	})

	t.Run("is idempotent", func(t *testing.T) {
		t.Parallel()
		w := &discardWriter{keep: true}
		c := NewConn(w, Options{})
		c.CloseAfter([]byte("first"))
		c.CloseAfter([]byte("second"))
		require.ErrorIs(t, c.Run(context.Background()), ErrClosed)
		require.Equal(t, "first", w.buf.String())
	})

	t.Run("a later Close wins", func(t *testing.T) {
		t.Parallel()
		w := &discardWriter{keep: true}
		c := NewConn(w, Options{})
		require.True(t, c.Enqueue([]byte("queued")))
		c.CloseAfter([]byte("final"))
		cause := errors.New("shutdown timeout")
		c.Close(cause)
		require.ErrorIs(t, c.Run(context.Background()), cause)
		require.Zero(t, w.buf.Len(), "nothing written")
	})

	t.Run("after Close does nothing", func(t *testing.T) {
		t.Parallel()
		c := NewConn(&discardWriter{}, Options{})
		cause := errors.New("gone")
		c.Close(cause)
		c.CloseAfter([]byte("final"))
		require.ErrorIs(t, c.Err(), cause)
	})
}

func TestConnRun(t *testing.T) {
	t.Parallel()

	t.Run("ctx end closes the conn with its cause", func(t *testing.T) {
		t.Parallel()
		c := NewConn(&discardWriter{}, Options{})
		ctx, cancel := context.WithCancelCause(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- c.Run(ctx) }()
		cause := errors.New("client left")
		cancel(cause)
		require.ErrorIs(t, recv(t, ran), cause)
		require.ErrorIs(t, c.Err(), cause)
		recv(t, c.Done())
	})

	t.Run("write error closes the conn with it", func(t *testing.T) {
		t.Parallel()
		c := NewConn(&discardWriter{failAt: 1}, Options{})
		require.True(t, c.Enqueue([]byte("x")))
		err := c.Run(context.Background())
		require.ErrorIs(t, err, errBroken)
		require.Equal(t, err, c.Err())
		require.False(t, c.Enqueue([]byte("y")))
	})

	t.Run("writer without Flush is an error", func(t *testing.T) {
		t.Parallel()
		c := NewConn(struct{ http.ResponseWriter }{&discardWriter{}}, Options{})
		require.True(t, c.Enqueue([]byte("x")))
		require.ErrorIs(t, c.Run(context.Background()), http.ErrNotSupported)
	})

	t.Run("writer without deadlines is fine", func(t *testing.T) {
		t.Parallel()
		rec := httptest.NewRecorder() // Flush but no SetWriteDeadline
		c := NewConn(rec, Options{})
		require.True(t, c.Enqueue(event("1", "a")))
		c.CloseAfter(event("2", "b"))
		require.ErrorIs(t, c.Run(context.Background()), ErrClosed)
		require.Equal(t, string(event("1", "a"))+string(event("2", "b")), rec.Body.String())
		require.True(t, rec.Flushed)
	})

	t.Run("called twice", func(t *testing.T) {
		t.Parallel()
		c := NewConn(&discardWriter{}, Options{})
		c.Close(nil)
		require.ErrorIs(t, c.Run(context.Background()), ErrClosed)
		require.ErrorIs(t, c.Run(context.Background()), errRunTwice)
	})
}

func TestConnClose(t *testing.T) {
	t.Parallel()

	t.Run("first cause wins", func(t *testing.T) {
		t.Parallel()
		c := NewConn(&discardWriter{}, Options{})
		require.NoError(t, c.Err())
		first := errors.New("first")
		c.Close(first)
		c.Close(errors.New("second"))
		c.Close(nil)
		require.ErrorIs(t, c.Err(), first)
		recv(t, c.Done())
	})

	t.Run("nil cause is ErrClosed", func(t *testing.T) {
		t.Parallel()
		c := NewConn(&discardWriter{}, Options{})
		c.Close(nil)
		require.ErrorIs(t, c.Err(), ErrClosed)
	})
}

// TestConnConcurrentProducers runs many EnqueueWait producers against a
// small bound: every frame arrives, each producer's in order.
func TestConnConcurrentProducers(t *testing.T) {
	t.Parallel()
	const producers, perProducer = 8, 100
	b := setup(t, serverConfig{Options: Options{MaxQueueBytes: 2 << 10, Heartbeat: time.Millisecond}})
	s := readEvents(t, b.connect(t).Body)
	c := recv(t, b.conns)

	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range perProducer {
				frame := event(fmt.Sprintf("%d-%d", p, i), strings.Repeat("z", 100))
				assert.NoError(t, c.EnqueueWait(context.Background(), frame))
			}
		})
	}
	next := make([]int, producers)
	for range producers * perProducer {
		ev := s.next(t)
		var p, i int
		_, err := fmt.Sscanf(ev.ID, "%d-%d", &p, &i)
		require.NoError(t, err)
		require.Equal(t, next[p], i, "producer %d out of order", p)
		next[p]++
	}
	wg.Wait()
	c.Close(nil)
	require.ErrorIs(t, recv(t, b.runErrs), ErrClosed)
}
