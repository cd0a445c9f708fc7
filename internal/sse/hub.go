package sse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamer-dev/streamer/internal/startstop"
)

// HubOptions configure a Hub. The zero value gives the defaults.
type HubOptions struct {
	// Workers is the number of writer goroutines. Default 4.
	Workers int
	// WriteSlice bounds one write attempt; a client whose socket buffer is
	// full is set aside and retried rather than holding a worker. Default
	// 20ms.
	WriteSlice time.Duration
	// Tick is the sweeper's period: stalled writes are retried this often.
	// Heartbeats are checked every second. Default 50ms.
	Tick time.Duration
	// PeekInterval is how often each connection not written to for that
	// long is checked for a client that went away (one non-blocking
	// syscall each); a connection written to more often learns of it from
	// its writes, by the second write after the client left. Default 3s.
	PeekInterval time.Duration
}

// ErrPeerClosed is the close cause of a detached Conn whose client closed
// the connection.
var ErrPeerClosed = errors.New("sse: client closed the connection")

// ErrHubStopped is the close cause of a Conn attached to a hub that is not
// running.
var ErrHubStopped = errors.New("sse: hub not running")

// Hub drives detached Conns: connections taken over from net/http (see
// Conn.Attach), written by a fixed pool of workers instead of one goroutine
// per connection. An idle detached Conn costs no goroutine and no buffer.
//
// One sweeper goroutine retries writes that found a full socket buffer,
// writes heartbeats on idle Conns and checks for clients that went away
// (without a reader goroutine per connection, a closed peer is noticed by a
// non-blocking peek).
//
// A Hub follows the lifecycle contract of package startstop: Start runs the
// workers and the sweeper until Stop (or the end of Start's context), which
// closes and finishes every Conn still attached. A Conn attached while the
// hub is not running is refused at once.
type Hub struct {
	startstop.Base
	opts HubOptions

	mu      sync.Mutex
	cond    *sync.Cond
	running bool // between Start and Stop: Attach accepts, workers run
	ready   []*Conn
	stalled []*Conn
	conns   map[*Conn]struct{}

	goroutines atomic.Int32 // workers and sweeper running
}

// HubStats is a snapshot of what a Hub holds.
type HubStats struct {
	Conns      int // attached Conns not yet finished
	Goroutines int // workers and sweeper running
}

// NewHub returns a hub; Start runs it.
func NewHub(opts HubOptions) *Hub {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.WriteSlice <= 0 {
		opts.WriteSlice = 20 * time.Millisecond
	}
	if opts.Tick <= 0 {
		opts.Tick = 50 * time.Millisecond
	}
	if opts.PeekInterval <= 0 {
		opts.PeekInterval = 3 * time.Second
	}
	h := &Hub{opts: opts, conns: make(map[*Conn]struct{})}
	h.cond = sync.NewCond(&h.mu)
	return h
}

// Start starts the workers and the sweeper and returns; they run until Stop
// is called or ctx ends. A second Start while running does nothing.
func (h *Hub) Start(ctx context.Context) error {
	ctx, shouldStart, started, stopped := h.StartInit(ctx)
	if !shouldStart {
		return nil
	}
	h.mu.Lock()
	h.running = true
	h.mu.Unlock()
	var wg sync.WaitGroup
	h.goroutines.Add(int32(h.opts.Workers) + 1)
	for range h.opts.Workers {
		wg.Go(func() {
			defer h.goroutines.Add(-1)
			h.work()
		})
	}
	wg.Go(func() {
		defer h.goroutines.Add(-1)
		h.sweep(ctx)
	})
	go func() {
		defer stopped()
		started()
		<-ctx.Done()
		h.shutdown(&wg)
	}()
	return nil
}

// shutdown refuses further Attaches, waits for the workers and the sweeper,
// then closes (with ErrClosed) and finishes every Conn still attached.
func (h *Hub) shutdown(wg *sync.WaitGroup) {
	h.mu.Lock()
	h.running = false
	conns := make([]*Conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	h.cond.Broadcast()
	wg.Wait()
	for _, c := range conns {
		c.Close(ErrClosed)
		h.finish(c)
	}
	h.mu.Lock()
	clear(h.ready)
	clear(h.stalled)
	h.ready, h.stalled = nil, nil
	h.mu.Unlock()
}

// Len returns the number of attached Conns.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Stats returns what the hub holds now.
func (h *Hub) Stats() HubStats {
	return HubStats{Conns: h.Len(), Goroutines: int(h.goroutines.Load())}
}

// Attach hands the Conn over to h: from now on h's workers write what is
// queued to nc, which must already carry the response head. The
// ResponseWriter given to NewConn is no longer used (Run must not be
// called). onClose runs once, after the Conn closed for any reason and
// before nc is closed: on a hub worker, or on the goroutine that calls
// Stop, or, when h is not running, on the caller's goroutine before Attach
// returns (the Conn is then closed with ErrHubStopped). Attach clears nc's
// write deadline.
func (c *Conn) Attach(h *Hub, nc net.Conn, onClose func(error)) {
	// The hub sets its own deadlines, and only when a write must wait; one
	// left from writing the response head would fail the first write.
	_ = nc.SetWriteDeadline(time.Time{})
	raw := rawConn(nc)
	c.mu.Lock()
	c.nc, c.raw, c.onClose = nc, raw, onClose
	c.w, c.rc = nil, nil
	c.running = true
	c.mu.Unlock()
	c.lastSent.Store(time.Now().UnixNano())
	h.mu.Lock()
	if !h.running {
		h.mu.Unlock()
		c.Close(ErrHubStopped)
		h.finish(c)
		return
	}
	h.conns[c] = struct{}{}
	h.mu.Unlock()
	c.hub.Store(h)
	h.schedule(c)
}

// Hijack hands an HTTP/1.1 response over to h: it takes the connection
// behind the ResponseWriter given to NewConn over from net/http, writes the
// response head itself (200, the ResponseWriter's headers, Connection:
// close, since the body runs until the connection closes) within
// WriteTimeout, and attaches the connection to h (see Attach, which then
// runs onClose exactly once). Nothing may have been written to the
// ResponseWriter before. When Hijack returns an error, nothing was attached
// and onClose is never called; the caller still owns the Conn, and the
// connection, if it was taken over, is closed.
func (c *Conn) Hijack(h *Hub, onClose func(error)) error {
	nc, err := c.hijack()
	if err != nil {
		return err
	}
	c.Attach(h, nc, onClose)
	return nil
}

// hijack takes the connection over and writes the response head.
func (c *Conn) hijack() (net.Conn, error) {
	w := c.w
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("sse: take the connection over: %w", err)
	}
	if n := brw.Writer.Buffered(); n > 0 { // nothing should be buffered; never lose it
		nc.Close()
		return nil, fmt.Errorf("sse: %d response bytes buffered before the hijack", n)
	}
	head := appendResponseHead(make([]byte, 0, 256), w.Header(), time.Now())
	_ = nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	if _, err := nc.Write(head); err != nil {
		nc.Close()
		return nil, fmt.Errorf("sse: write the response head: %w", err)
	}
	return nc, nil
}

// appendResponseHead appends an HTTP/1.1 200 response head carrying hdr,
// with Connection: close and a Date, ending with the blank line.
func appendResponseHead(dst []byte, hdr http.Header, now time.Time) []byte {
	hdr = hdr.Clone()
	hdr.Set("Connection", "close")
	hdr.Set("Date", now.UTC().Format(http.TimeFormat))
	buf := bytes.NewBuffer(append(dst, "HTTP/1.1 200 OK\r\n"...))
	_ = hdr.Write(buf) // a bytes.Buffer never fails
	buf.WriteString("\r\n")
	return buf.Bytes()
}

// schedule puts c on the ready list unless it is there or being written.
func (h *Hub) schedule(c *Conn) {
	c.mu.Lock()
	push := c.claimLocked()
	c.mu.Unlock()
	if push {
		h.push(c)
	}
}

// claimLocked marks c as scheduled and reports whether it was not already
// (the caller then pushes it). Call with c.mu held.
func (c *Conn) claimLocked() bool {
	if c.sched {
		return false
	}
	c.sched = true
	return true
}

func (h *Hub) push(c *Conn) {
	h.mu.Lock()
	h.ready = append(h.ready, c)
	h.mu.Unlock()
	h.cond.Signal()
}

func (h *Hub) work() {
	for {
		h.mu.Lock()
		for len(h.ready) == 0 && h.running {
			h.cond.Wait()
		}
		if !h.running {
			h.mu.Unlock()
			return
		}
		c := h.ready[0]
		h.ready[0] = nil
		h.ready = h.ready[1:]
		h.mu.Unlock()
		h.serve(c)
	}
}

// serve writes what c has queued. The worker holds c (c.sched is true)
// until it either unschedules it with nothing left to do, parks it as
// stalled, requeues it, or finishes it.
//
// A batch of one frame is written straight from the shared frame; several
// are copied into one pooled buffer, so that each batch is one write(2).
// The first attempt is a single non-blocking write with no deadline (no
// timer per delivery); only when the socket buffer is full does the worker
// fall back to a write bounded by WriteSlice, and a Conn still not done
// after that is set aside for the sweeper to retry.
func (h *Hub) serve(c *Conn) {
	if c.out != nil && c.Err() != nil { // closed while set aside
		h.finish(c)
		return
	}
	if c.out == nil {
		batch, last, open := c.take()
		if !open {
			h.finish(c)
			return
		}
		if len(batch) == 0 && !last {
			h.unschedule(c)
			return
		}
		c.batch, c.last = batch, last
		if len(batch) == 1 {
			c.out = batch[0]
		} else {
			c.scratch = getScratch(batch)
			c.out = *c.scratch
		}
	}

	now := time.Now()
	if err := h.write(c, now); err != nil {
		if err != errStalled {
			h.fail(c, fmt.Errorf("sse: write: %w", err))
			return
		}
		h.mu.Lock()
		h.stalled = append(h.stalled, c)
		h.mu.Unlock()
		return
	}
	h.written(c, now)
}

var (
	// errStalled: the client is not reading for now; set the Conn aside.
	errStalled = errors.New("sse: write stalled")
	// errWouldBlock: a non-blocking write found the socket buffer full.
	errWouldBlock = errors.New("sse: socket buffer full")
)

// write writes c.out, advancing it, and returns nil once all of it is
// written, errStalled when the client is not reading for now, or the error
// that ends the Conn (also once it made no progress for WriteTimeout).
func (h *Hub) write(c *Conn, now time.Time) error {
	if c.raw != nil && !c.deadline {
		n, err := writeNonBlocking(c.raw, c.out)
		c.out = c.out[n:]
		switch {
		case err != nil && err != errWouldBlock && !errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("write to %s: %w", c.nc.RemoteAddr(), err)
		case len(c.out) == 0:
			return nil
		case n > 0:
			c.stalled = time.Time{} // progress: the stall clock restarts below
		}
	}
	if err := c.nc.SetWriteDeadline(now.Add(h.opts.WriteSlice)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	c.deadline = true
	n, err := c.nc.Write(c.out)
	c.out = c.out[n:]
	if err == nil {
		return nil
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if n > 0 || c.stalled.IsZero() {
		c.stalled = now
	} else if now.Sub(c.stalled) > c.opts.WriteTimeout {
		return fmt.Errorf("no progress for %s: %w", c.opts.WriteTimeout, err)
	}
	return errStalled
}

// written ends a batch that is all written: the queue bound is released,
// the frame slice kept for reuse, and c unscheduled (or requeued when more
// arrived), all under one lock.
func (h *Hub) written(c *Conn, now time.Time) {
	if c.scratch != nil {
		putScratch(c.scratch)
		c.scratch = nil
	}
	if c.deadline {
		// Clear it, so that the next batch is tried without one again; a
		// failure shows up on that write.
		_ = c.nc.SetWriteDeadline(time.Time{})
		c.deadline = false
	}
	batch := c.batch
	clear(batch)
	c.out, c.batch, c.stalled = nil, nil, time.Time{}
	c.lastSent.Store(now.UnixNano())

	c.mu.Lock()
	c.inflight = 0
	c.wakeWaitersLocked()
	if c.err == nil && cap(batch) <= maxSpareFrames {
		c.spare = batch[:0]
	}
	if c.last {
		c.mu.Unlock()
		c.Close(ErrClosed)
		h.finish(c)
		return
	}
	requeue := c.releaseLocked()
	c.mu.Unlock()
	if requeue {
		h.push(c)
	}
}

// unschedule releases c, or requeues it if something arrived meanwhile
// (Enqueue saw c.sched and did not schedule it).
func (h *Hub) unschedule(c *Conn) {
	c.mu.Lock()
	requeue := c.releaseLocked()
	c.mu.Unlock()
	if requeue {
		h.push(c)
	}
}

// releaseLocked gives up the worker's hold on c (clears c.sched), unless c
// has more to do: frames queued, a close to finish, or a final frame to
// take after CloseAfter. It reports whether c must be pushed again instead.
// Call with c.mu held, between batches (c.last is false).
func (c *Conn) releaseLocked() (requeue bool) {
	if len(c.queue) > 0 || c.err != nil || c.draining {
		return true
	}
	c.sched = false
	return false
}

func (h *Hub) fail(c *Conn, err error) {
	c.Close(err)
	h.finish(c)
}

// finish runs c's onClose once and closes its connection. c must be closed.
func (h *Hub) finish(c *Conn) {
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	c.finished, c.sched = true, true // never scheduled again
	err, onClose, nc := c.err, c.onClose, c.nc
	c.onClose = nil
	c.mu.Unlock()

	if c.scratch != nil {
		putScratch(c.scratch)
		c.scratch = nil
	}
	c.out, c.batch = nil, nil
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	if onClose != nil {
		onClose(err)
	}
	if nc != nil {
		_ = nc.Close()
	}
}

// sweep retries stalled writes every tick, and every second writes
// heartbeats and looks for clients that went away.
func (h *Hub) sweep(ctx context.Context) {
	ticker := time.NewTicker(h.opts.Tick)
	defer ticker.Stop()
	lastSecond := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			h.mu.Lock()
			stalled := h.stalled
			h.stalled = nil
			h.mu.Unlock()
			for _, c := range stalled {
				h.push(c)
			}
			if now.Sub(lastSecond) >= time.Second {
				lastSecond = now
				h.checkIdle(now)
			}
		}
	}
}

func (h *Hub) checkIdle(now time.Time) {
	h.mu.Lock()
	conns := make([]*Conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		if hb := c.opts.Heartbeat; hb > 0 && now.UnixNano()-c.lastSent.Load() >= int64(hb) {
			c.Enqueue(ping)
		}
		// A Conn written to within the interval needs no peek: writing to
		// a departed client fails by the second write (the first draws a
		// reset), so only quiet Conns are checked.
		quiet := now.UnixNano()-c.lastSent.Load() >= int64(h.opts.PeekInterval)
		if quiet && now.Sub(c.lastPeek) >= h.opts.PeekInterval {
			c.lastPeek = now
			if peerClosed(c.raw) {
				c.Close(ErrPeerClosed)
			}
		}
	}
}
