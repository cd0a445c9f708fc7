package sse

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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

// Frames of a batch are referenced from a [][]byte that Run reuses; a slice
// grown by a burst beyond this many frames is dropped rather than kept.
const maxSpareFrames = 64

// Conn is the outbound side of one SSE response: a bounded queue of frames
// and the writer that drains it. All methods are safe for concurrent use;
// Run must be called once, by the goroutine that owns the ResponseWriter.
type Conn struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	opts Options

	done chan struct{} // closed by closeLocked, once
	wake chan struct{} // capacity 1; tells Run the queue or state changed

	mu       sync.Mutex
	queue    [][]byte      // accepted frames not yet taken by Run; read-only
	spare    [][]byte      // Run's last batch slice, emptied, for reuse
	queued   int           // bytes in queue
	inflight int           // bytes of the batch Run is writing
	room     chan struct{} // closed when room is made; nil when nobody waits
	draining bool          // CloseAfter was called
	final    []byte        // CloseAfter's frame, until Run takes it
	running  bool          // Run was called
	err      error         // close cause; nil while open

	noDeadline bool // SetWriteDeadline is not supported; only Run uses it

	// Detached mode (see Hub). hub is set once, by Attach.
	hub      atomic.Pointer[Hub]
	nc       net.Conn        // the hijacked connection; used by one hub worker at a time
	onClose  func(error)     // called once, by a hub worker, after the Conn closed
	sched    bool            // under mu: queued on the hub or held by a worker
	finished bool            // under mu: onClose has been called
	raw      syscall.RawConn // nc's descriptor, for non-blocking writes; nil if nc has none
	out      []byte          // worker-owned: unwritten bytes of the current batch (nil: none)
	scratch  *[]byte         // worker-owned: the pooled buffer out points into, if any
	batch    [][]byte        // worker-owned: the current batch's frame slice, for reuse
	deadline bool            // worker-owned: a write deadline is set on nc
	last     bool            // worker-owned: the current batch ends the Conn
	stalled  time.Time       // worker-owned: when the current batch stopped moving
	lastSent atomic.Int64    // unix nanos of the last completed write
	lastPeek time.Time       // sweeper-owned: the last closed-peer check
}

// NewConn returns an open Conn writing to w. It uses
// http.NewResponseController(w) for Flush and SetWriteDeadline, so w (or
// what it unwraps to) must support flushing. NewConn writes nothing: the
// caller sets the response headers before Run, and Run's first Flush sends
// them.
func NewConn(w http.ResponseWriter, opts Options) *Conn {
	if opts.MaxQueueBytes <= 0 {
		opts.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	opts.Heartbeat = max(opts.Heartbeat, 0)
	return &Conn{
		w:    w,
		rc:   http.NewResponseController(w),
		opts: opts,
		done: make(chan struct{}),
		wake: make(chan struct{}, 1),
	}
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
	var push *Hub // a detached Conn to put on its hub's ready list
	wake := c.pushLocked(frame)
	if h := c.hub.Load(); wake && h != nil {
		// Claimed for the hub under this lock rather than by signal, which
		// would take it again; if a worker holds it, it will see the frame.
		if c.claimLocked() {
			push = h
		}
		wake = false
	}
	c.mu.Unlock()
	if push != nil {
		push.push(c)
	}
	if wake {
		c.signal()
	}
	return true
}

// EnqueueWait queues frame like Enqueue, but when it does not fit under
// MaxQueueBytes it waits for Run to write what is queued instead of
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
			wake := c.pushLocked(frame)
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
// queued and wakes Run and EnqueueWait. It is idempotent and the first
// cause wins, also over a CloseAfter still in progress: Run then returns
// without writing the final frame. A write Run has already started is not
// interrupted; it ends by itself or at the write deadline.
func (c *Conn) Close(cause error) {
	c.mu.Lock()
	c.closeLocked(cause)
	c.mu.Unlock()
	c.signal() // a detached Conn is finished by a hub worker
}

// CloseAfter ends the Conn gracefully: from now on Enqueue returns false
// and EnqueueWait returns [ErrClosed], and Run writes everything already
// queued followed by frame (which does not count against MaxQueueBytes) in
// one Write, flushes, closes the Conn with [ErrClosed] and returns
// ErrClosed. Until then the Conn is draining, not closed: Err is nil and
// Done is open. If the write fails, the Conn closes with that error instead.
//
// CloseAfter does nothing if the Conn is closed or CloseAfter was already
// called; a later Close wins over it (see Close). If Run is never called,
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
// plus those of the batch Run is writing. Close drops the queued frames, so
// afterwards only a write still in progress counts, until it ends.
func (c *Conn) QueuedBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued + c.inflight
}

func (c *Conn) fitsLocked(n int) bool {
	pending := c.queued + c.inflight
	return pending == 0 || pending+n <= c.opts.MaxQueueBytes
}

// pushLocked queues frame and reports whether Run needs a wake-up: only
// the first frame after Run took the queue does, since Run takes the whole
// queue when it wakes.
func (c *Conn) pushLocked(frame []byte) (wake bool) {
	if len(frame) == 0 {
		return false
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	return len(c.queue) == 1
}

func (c *Conn) closeLocked(cause error) {
	if c.err != nil {
		return
	}
	if cause == nil {
		cause = ErrClosed
	}
	c.err = cause
	clear(c.queue) // drop the references to shared frames
	c.queue, c.spare, c.final, c.queued = nil, nil, nil, 0
	close(c.done) // wakes Run and every EnqueueWait
}

func (c *Conn) wakeWaitersLocked() {
	if c.room != nil {
		close(c.room)
		c.room = nil
	}
}

// signal wakes Run without blocking; one pending signal is enough, since
// Run takes the whole queue each time it wakes. A detached Conn is put on
// its hub's ready list instead.
func (c *Conn) signal() {
	if h := c.hub.Load(); h != nil {
		h.schedule(c)
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
