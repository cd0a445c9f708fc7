package sse

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/streamer-dev/streamer/internal/defaults"
)

// Defaults for the zero fields of [Options].
const (
	DefaultMaxQueueBytes = 1 << 20
	DefaultWriteTimeout  = 10 * time.Second
)

// Options configure a [Conn]. The zero value gives the defaults.
type Options struct {
	// MaxQueueBytes bounds the bytes accepted and not yet written (queued
	// plus the batch being written). Zero or negative means
	// DefaultMaxQueueBytes (1 MiB).
	MaxQueueBytes int
	// WriteTimeout is the deadline for each Write plus its Flush. Zero or
	// negative means DefaultWriteTimeout (10s).
	WriteTimeout time.Duration
	// Heartbeat is how long the connection may go without a write before
	// Run writes ": ping\n". Zero or negative disables heartbeats.
	Heartbeat time.Duration
	// Lag, when set, observes the delivery lag of every frame queued with
	// [Conn.EnqueueAt]: from its commit time to the end of the write that
	// put it on the socket. It is called by the writer (Run's goroutine or
	// a hub worker) once per such frame after its batch was written in
	// full, never for a batch whose write failed or was dropped, and must
	// be safe for concurrent use and not block.
	Lag LagObserver
}

// LagObserver receives delivery lags; *metrics.Metrics implements it.
type LagObserver interface {
	DeliveryLag(d time.Duration)
}

var (
	// ErrSlowConsumer is the close cause when Enqueue would have exceeded
	// MaxQueueBytes: the client does not read as fast as events arrive.
	ErrSlowConsumer = errors.New("sse: slow consumer: outbound queue limit exceeded")
	// ErrClosed is the close cause of Close(nil) and of a finished
	// CloseAfter, and what EnqueueWait returns once CloseAfter was called.
	ErrClosed = errors.New("sse: connection closed")

	errRunTwice = errors.New("sse: Run called more than once")
)

// Conn is the outbound side of one SSE response: a bounded queue of frames
// (frameQueue) and one of two writers that drain it. Until it is handed to
// a [Hub] (Attach, Hijack), the writer is [Conn.Run] on the goroutine that
// owns the ResponseWriter (handlerWriter); after, it is the hub's workers
// (hubConn). All methods are safe for concurrent use.
type Conn struct {
	frameQueue
	opts Options

	wake    chan struct{}           // capacity 1; tells Run the queue or state changed
	running bool                    // under mu: Run or Attach was called
	hw      *handlerWriter          // under mu: the ResponseWriter; nil once attached
	hc      atomic.Pointer[hubConn] // set once, by Attach
}

// NewConn returns an open Conn writing to w. It uses
// http.NewResponseController(w) for Flush, SetWriteDeadline and Hijack, so
// w (or what it unwraps to) must support flushing. NewConn writes nothing:
// the caller sets the response headers before Run, and Run's first Flush
// sends them (or Hijack writes them).
func NewConn(w http.ResponseWriter, opts Options) *Conn {
	defaults.Positive(&opts.MaxQueueBytes, DefaultMaxQueueBytes)
	defaults.Positive(&opts.WriteTimeout, DefaultWriteTimeout)
	opts.Heartbeat = max(opts.Heartbeat, 0)
	c := &Conn{
		opts: opts,
		wake: make(chan struct{}, 1),
		hw:   &handlerWriter{w: w, rc: http.NewResponseController(w)},
	}
	c.maxBytes = opts.MaxQueueBytes
	c.holdMax = max(min(maxHoldBytes, opts.MaxQueueBytes/2), 1)
	c.done = make(chan struct{})
	return c
}

// Enqueue queues frame for writing without blocking and reports whether it
// was accepted. It never waits on the network. frame is treated as
// read-only, so one frame may be shared by many connections, and must not
// be changed afterwards: it is retained until it is written, or after the
// Conn closes until a write in progress ends (a detached Conn's until the
// hub's next sweep).
//
// If accepting frame would take the bytes queued and not yet written past
// MaxQueueBytes, Enqueue closes the Conn with [ErrSlowConsumer] and returns
// false. A frame larger than MaxQueueBytes is accepted only when nothing is
// queued or being written (an event's data alone may be 1 MiB, so a frame
// can exceed the default bound). Enqueue returns false once the Conn is
// closed or CloseAfter was called. Empty frames are accepted and ignored.
func (c *Conn) Enqueue(frame []byte) bool {
	return c.enqueue(frame, 0, false)
}

// EnqueueAt is Enqueue for a live event's frame that was committed at
// committed (the database's commit time): once the frame is written to
// the socket, the time since committed is reported to Options.Lag. A zero
// committed is Enqueue.
func (c *Conn) EnqueueAt(frame []byte, committed time.Time) bool {
	return c.enqueue(frame, unixNanos(committed), false)
}

// EnqueueHeld is EnqueueAt for a producer that queues many frames in a
// burst (the dispatcher's fan-out turn): it does not wake the writer, so
// that the burst goes out in one write rather than in as many writes as
// the writer manages to start while the burst is still being queued. The
// producer calls [Conn.Release] at the end of the burst. Until then the
// writer writes held frames only when it writes for another reason (a
// frame queued with Enqueue into an empty queue, a heartbeat, CloseAfter),
// or once they reach 64 KiB or half of MaxQueueBytes, whichever is less:
// a held queue wakes its writer with at least half the slow-consumer bound
// still free, and a burst larger than that gains nothing from one write.
// The slow-consumer bound applies to held frames as to any.
func (c *Conn) EnqueueHeld(frame []byte, committed time.Time) bool {
	return c.enqueue(frame, unixNanos(committed), true)
}

// Release ends the burst of EnqueueHeld: the writer is woken if held
// frames are queued. It never blocks and does nothing when nothing is
// held.
func (c *Conn) Release() {
	c.mu.Lock()
	wake := c.held && len(c.frames) > 0
	c.held = false
	c.wakeUnlock(wake)
}

// ReleaseWrite is Release for a producer that releases only a few Conns
// at a time, on a Conn attached to a [Hub]: instead of waking a hub
// worker, it writes the held frames itself, on the caller's goroutine,
// with one non-blocking write(2), when no worker holds the Conn. It never
// waits: whatever that write does not take (a full socket buffer, an
// error, a close that came meanwhile) is handed to the hub's workers as
// Release would, and they finish the Conn if it must end. Handing a Conn
// to a worker costs about as much as the write itself (a worker wakes up
// and goes back to sleep), so a producer releasing a few Conns per burst
// saves most of that; one releasing thousands should use Release and let
// the workers write in parallel. On a Conn not attached to a hub it is
// Release.
func (c *Conn) ReleaseWrite() {
	hc := c.hc.Load()
	if hc == nil || hc.raw == nil {
		c.Release()
		return
	}
	c.mu.Lock()
	wake := c.held && len(c.frames) > 0
	c.held = false
	if !wake || hc.sched || c.err != nil || c.draining {
		c.wakeUnlock(wake)
		return
	}
	hc.sched = true // this goroutine is hc's writer until it gives it up
	c.mu.Unlock()
	hc.serveInline()
}

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (c *Conn) enqueue(frame []byte, committed int64, hold bool) bool {
	c.mu.Lock()
	if c.err != nil || c.draining {
		c.mu.Unlock()
		return false
	}
	if !c.fitsLocked(len(frame)) {
		c.closeLocked(ErrSlowConsumer)
		c.mu.Unlock()
		c.signal() // a detached Conn is finished by a hub worker
		return false
	}
	wake := c.pushLocked(frame, committed)
	if hold && len(frame) > 0 {
		c.held = true
		wake = c.queued >= c.holdMax
	}
	c.wakeUnlock(wake)
	return true
}

// wakeUnlock unlocks c.mu and then, if wake is set, wakes the writer. A
// detached Conn is claimed for its hub under the lock rather than by
// signal, which would take it again; if a worker holds it, the worker sees
// the queue when it is done (idleLocked).
func (c *Conn) wakeUnlock(wake bool) {
	var push *hubConn // a detached Conn to put on its hub's ready list
	if hc := c.hc.Load(); wake && hc != nil {
		if hc.claimLocked() {
			push = hc
		}
		wake = false
	}
	c.mu.Unlock()
	if push != nil {
		push.h.push(push)
	}
	if wake {
		c.signal()
	}
}

// EnqueueWait queues frame like Enqueue, but when it does not fit under
// MaxQueueBytes it waits for the writer to write what is queued instead of
// closing the Conn: backpressure for replay. A frame larger than
// MaxQueueBytes is accepted once the queue is empty.
//
// It returns nil when frame was accepted, ctx.Err() when ctx ended first
// (also when ctx is already done on entry), the close cause when the Conn
// closed, or [ErrClosed] once CloseAfter was called. Frames from one
// goroutine keep their order; waiters are not served in any particular
// order.
func (c *Conn) EnqueueWait(ctx context.Context, frame []byte) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.mu.Lock()
		if c.err != nil || c.draining {
			err := c.err
			c.mu.Unlock()
			if err == nil {
				err = ErrClosed
			}
			return err
		}
		if c.fitsLocked(len(frame)) {
			wake := c.pushLocked(frame, 0)
			c.mu.Unlock()
			if wake {
				c.signal()
			}
			return nil
		}
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.mu.Unlock()

		select {
		case <-room:
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close closes the Conn with cause ([ErrClosed] if nil), drops what is
// queued and wakes the writer and EnqueueWait. It is idempotent and the
// first cause wins, also over a CloseAfter still in progress: the final
// frame is then not written. A write already started is not interrupted;
// it ends by itself or at the write deadline.
func (c *Conn) Close(cause error) {
	c.mu.Lock()
	c.closeLocked(cause)
	c.mu.Unlock()
	c.signal() // a detached Conn is finished by a hub worker
}

// CloseAfter ends the Conn gracefully: from now on Enqueue returns false
// and EnqueueWait returns [ErrClosed], and the writer writes everything
// already queued followed by frame (which does not count against
// MaxQueueBytes) in one Write, flushes, and closes the Conn with
// [ErrClosed] (Run then returns ErrClosed). Until then the Conn is
// draining, not closed: Err is nil and Done is open. If the write fails,
// the Conn closes with that error instead.
//
// CloseAfter does nothing if the Conn is closed or CloseAfter was already
// called; a later Close wins over it (see Close). If no writer ever runs,
// the Conn never closes by itself, so callers bound the drain with Close.
func (c *Conn) CloseAfter(frame []byte) {
	c.mu.Lock()
	if c.err != nil || c.draining {
		c.mu.Unlock()
		return
	}
	c.draining, c.final = true, frame
	c.wakeWaitersLocked()
	c.mu.Unlock()
	c.signal()
}

// Done returns a channel that is closed when the Conn closes.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns the close cause, or nil while the Conn is open (or draining
// after CloseAfter).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// QueuedBytes returns the bytes accepted and not yet written: those queued
// plus those of the batch being written. Close drops the queued frames, so
// afterwards only a write still in progress counts, until it ends.
func (c *Conn) QueuedBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued + c.inflight
}

// signal wakes the writer without blocking: Run through the wake channel
// (one pending signal is enough, since Run takes the whole queue each time
// it wakes), or a detached Conn's hub by putting it on the ready list.
func (c *Conn) signal() {
	if hc := c.hc.Load(); hc != nil {
		hc.h.schedule(hc)
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
