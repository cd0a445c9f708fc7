package sse

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// hubConn is the writer state of a Conn handed to a [Hub]: the hijacked
// network connection and the batch a hub worker is writing to it.
//
// A hubConn is written by at most one worker at a time: the one that found
// it on the ready list after sched was set. sched, finished and onClose are
// guarded by the Conn's mutex (so that queuing a frame and claiming the
// Conn for a worker are one step); the batch fields belong to the worker
// holding it; lastPeek to the sweeper.
type hubConn struct {
	c       *Conn
	h       *Hub
	nc      net.Conn
	raw     syscall.RawConn // nc's descriptor, for non-blocking writes; nil if nc has none
	onClose func(error)     // under c.mu; called once, by finish

	sched    bool // under c.mu: on the ready or stalled list, or held by a worker
	finished bool // under c.mu: finish ran

	out      []byte   // worker: unwritten bytes of the current batch (nil: none)
	scratch  *[]byte  // worker: the pooled buffer out points into, if any
	batch    [][]byte // worker: the current batch's frame slice, for reuse
	commits  []int64  // worker: the current batch's commit times, observed once written
	deadline bool     // worker: a write deadline is set on nc
	last     bool     // worker: the current batch ends the Conn
	stalled  int64    // worker: unix nanos when the current batch stopped moving; 0: moving

	lastSent atomic.Int64 // unix nanos of the last completed write
	lastPeek int64        // sweeper: unix nanos of the last closed-peer check
	watchID  uint64       // set under h.mu before hc is scheduled: its id in h.watched; 0: not watched
}

// Hijack hands an HTTP/1.1 response over to h: it takes the connection
// behind the ResponseWriter given to NewConn over from net/http, writes the
// response head itself (200, the ResponseWriter's headers, Connection:
// close, since the body runs until the connection closes) within
// WriteTimeout, and attaches the connection to h (see Attach, which then
// runs onClose exactly once). Nothing may have been written to the
// ResponseWriter before, and Run must not be called. When Hijack returns an
// error, nothing was attached and onClose is never called; the caller
// still owns the Conn, and the connection, if it was taken over, is closed.
func (c *Conn) Hijack(h *Hub, onClose func(error)) error {
	c.mu.Lock()
	hw := c.hw
	c.mu.Unlock()
	if hw == nil {
		return errors.New("sse: Hijack after Attach")
	}
	nc, brw, err := hw.rc.Hijack()
	if err != nil {
		return fmt.Errorf("sse: take the connection over: %w", err)
	}
	if n := brw.Writer.Buffered(); n > 0 { // nothing should be buffered; never lose it
		nc.Close()
		return fmt.Errorf("sse: %d response bytes buffered before the hijack", n)
	}
	now := time.Now()
	head := appendResponseHead(make([]byte, 0, 256), hw.w.Header(), now)
	_ = nc.SetWriteDeadline(now.Add(c.opts.WriteTimeout))
	if _, err := nc.Write(head); err != nil {
		nc.Close()
		return fmt.Errorf("sse: write the response head: %w", err)
	}
	c.Attach(h, nc, onClose)
	return nil
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

// Attach hands the Conn over to h: from now on h's workers write what is
// queued to nc, which must already carry the response head. The
// ResponseWriter given to NewConn is no longer used (Run must not be
// called). onClose runs once, after the Conn closed for any reason and
// before nc is closed: on a hub worker, or on the goroutine that stops the
// hub, or, when h is not running, on the caller's goroutine before Attach
// returns (the Conn is then closed with ErrHubStopped). Attach clears nc's
// write deadline.
func (c *Conn) Attach(h *Hub, nc net.Conn, onClose func(error)) {
	// The hub sets its own deadlines, and only when a write must wait; one
	// left from writing the response head would fail the first write.
	_ = nc.SetWriteDeadline(time.Time{})
	hc := &hubConn{c: c, h: h, nc: nc, raw: rawConn(nc), onClose: onClose}
	hc.lastSent.Store(time.Now().UnixNano())
	c.mu.Lock()
	c.hw = nil // net/http's response is not used again: let it go
	c.running = true
	c.mu.Unlock()
	h.mu.Lock()
	if !h.running {
		h.mu.Unlock()
		c.Close(ErrHubStopped)
		hc.finish()
		return
	}
	h.conns[hc] = struct{}{}
	h.watchLocked(hc)
	h.mu.Unlock()
	c.hc.Store(hc)
	h.schedule(hc)
}

// claimLocked marks hc as scheduled and reports whether it was not already
// (the caller then pushes it). Call with hc.c.mu held.
func (hc *hubConn) claimLocked() bool {
	if hc.sched {
		return false
	}
	hc.sched = true
	return true
}

// serve writes what hc's Conn has queued. The worker holds hc (sched is
// true) until it either unschedules it with nothing left to do, parks it
// as stalled, requeues it, or finishes it.
//
// A batch of one frame is written straight from the shared frame; several
// are copied into one pooled buffer, so that each batch is one write(2).
// The first attempt is a single non-blocking write with no deadline (no
// timer per delivery); only when the socket buffer is full does the worker
// fall back to a write bounded by WriteSlice, and a Conn still not done
// after that is set aside for the sweeper to retry.
func (hc *hubConn) serve() {
	c := hc.c
	if hc.out != nil && c.Err() != nil { // closed while set aside
		hc.finish()
		return
	}
	if hc.out == nil {
		batch, commits, last, open := c.take()
		if !open {
			hc.finish()
			return
		}
		if len(batch) == 0 && !last {
			hc.unschedule()
			return
		}
		hc.batch, hc.commits, hc.last = batch, commits, last
		hc.out = hc.batchBytes()
	}

	now := time.Now()
	if err := hc.write(now); err != nil {
		if err != errStalled {
			c.Close(fmt.Errorf("sse: write: %w", err))
			hc.finish()
			return
		}
		hc.h.park(hc)
		return
	}
	hc.written(now)
}

// serveInline is serve's first write attempt, made by a producer that
// claimed hc in ReleaseWrite instead of a worker: one non-blocking write
// of the whole batch. Anything else (a partial write, a full socket
// buffer, a write error, a close, CloseAfter's last batch) is left to a
// worker, which carries on from hc.out as after any of its own attempts;
// so a producer never waits, never sets a deadline and never runs
// onClose.
func (hc *hubConn) serveInline() {
	c := hc.c
	batch, commits, last, open := c.take()
	if !open || last {
		if open {
			hc.batch, hc.commits, hc.last = batch, commits, last
			hc.out = hc.batchBytes()
		}
		hc.h.push(hc) // closed meanwhile (the worker finishes it), or draining
		return
	}
	if len(batch) == 0 {
		hc.unschedule()
		return
	}
	hc.batch, hc.commits, hc.last = batch, commits, last
	hc.out = hc.batchBytes()
	n, err := writeNonBlocking(hc.raw, hc.out)
	hc.out = hc.out[n:]
	if err != nil || len(hc.out) > 0 {
		hc.h.push(hc) // the worker writes the rest, or meets the error again
		return
	}
	hc.written(time.Now())
}

// batchBytes returns the bytes of hc.batch to write: its one frame, or
// all of them copied into a pooled buffer (hc.scratch).
func (hc *hubConn) batchBytes() []byte {
	if len(hc.batch) == 1 {
		return hc.batch[0]
	}
	hc.scratch = getScratch(hc.batch)
	return *hc.scratch
}

var (
	// errStalled: the client is not reading for now; set the Conn aside.
	errStalled = errors.New("sse: write stalled")
	// errWouldBlock: a non-blocking write found the socket buffer full.
	errWouldBlock = errors.New("sse: socket buffer full")
)

// write writes hc.out, advancing it, and returns nil once all of it is
// written, errStalled when the client is not reading for now, or the error
// that ends the Conn (also once it made no progress for WriteTimeout).
func (hc *hubConn) write(now time.Time) error {
	if hc.raw != nil && !hc.deadline {
		n, err := writeNonBlocking(hc.raw, hc.out)
		hc.out = hc.out[n:]
		switch {
		case err != nil && err != errWouldBlock && !errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("write to %s: %w", hc.nc.RemoteAddr(), err)
		case len(hc.out) == 0:
			return nil
		case n > 0:
			hc.stalled = 0 // progress: the stall clock restarts below
		}
	}
	if err := hc.nc.SetWriteDeadline(now.Add(hc.h.opts.WriteSlice)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	hc.deadline = true
	n, err := hc.nc.Write(hc.out)
	hc.out = hc.out[n:]
	if err == nil {
		return nil
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if timeout := hc.c.opts.WriteTimeout; n > 0 || hc.stalled == 0 {
		hc.stalled = now.UnixNano()
	} else if now.UnixNano()-hc.stalled > int64(timeout) {
		return fmt.Errorf("no progress for %s: %w", timeout, err)
	}
	return errStalled
}

// written ends a batch that is all written: the queue bound is released,
// the frame slice kept for reuse, and hc unscheduled (or requeued when more
// arrived), all under one lock.
func (hc *hubConn) written(now time.Time) {
	if hc.scratch != nil {
		putScratch(hc.scratch)
		hc.scratch = nil
	}
	if hc.deadline {
		// Clear it, so that the next batch is tried without one again; a
		// failure shows up on that write.
		_ = hc.nc.SetWriteDeadline(time.Time{})
		hc.deadline = false
	}
	batch, commits := hc.batch, hc.commits
	hc.out, hc.batch, hc.commits, hc.stalled = nil, nil, nil, 0
	hc.lastSent.Store(now.UnixNano())

	c := hc.c
	observeLag(c.opts.Lag, commits)
	c.mu.Lock()
	c.releaseLocked(batch, commits)
	if hc.last {
		c.mu.Unlock()
		c.Close(ErrClosed)
		hc.finish()
		return
	}
	requeue := hc.idleLocked()
	c.mu.Unlock()
	if requeue {
		hc.h.push(hc)
	}
}

// unschedule releases hc, or requeues it if something arrived meanwhile
// (Enqueue saw sched and did not schedule it).
func (hc *hubConn) unschedule() {
	hc.c.mu.Lock()
	requeue := hc.idleLocked()
	hc.c.mu.Unlock()
	if requeue {
		hc.h.push(hc)
	}
}

// idleLocked gives up the worker's hold on hc (clears sched), unless its
// Conn has more to do: frames queued that are not held (see
// Conn.EnqueueHeld; Release schedules those), a close to finish, or a
// final frame to take after CloseAfter. It reports whether hc must be
// pushed again instead. Call with hc.c.mu held, between batches (hc.last
// is false).
func (hc *hubConn) idleLocked() (requeue bool) {
	c := hc.c
	if c.writableLocked() || c.err != nil || c.draining {
		return true
	}
	hc.sched = false
	return false
}

// finish runs onClose once and closes the network connection. The Conn
// must be closed.
func (hc *hubConn) finish() {
	c := hc.c
	c.mu.Lock()
	if hc.finished {
		c.mu.Unlock()
		return
	}
	hc.finished, hc.sched = true, true // never scheduled again
	err, onClose := c.err, hc.onClose
	hc.onClose = nil
	c.mu.Unlock()

	if hc.scratch != nil {
		putScratch(hc.scratch)
		hc.scratch = nil
	}
	hc.out, hc.batch, hc.commits = nil, nil, nil
	h := hc.h
	h.mu.Lock()
	delete(h.conns, hc)
	if hc.watchID != 0 && h.watched != nil {
		delete(h.watched, hc.watchID) // its socket leaves the epoll set when nc closes
	}
	h.mu.Unlock()
	if onClose != nil {
		onClose(err)
	}
	abortIfSlow(hc.nc, err)
	_ = hc.nc.Close()
}
