package sse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// ping is the heartbeat frame, ": ping\n".
var ping = AppendComment(nil, "ping")

// Run is the writer loop; call it once, on the HTTP handler's goroutine,
// after setting the response headers. It waits for queued frames and writes
// everything queued as one Write of the concatenation followed by one Flush.
// Before each write it sets a write deadline of WriteTimeout, and it clears
// the deadline after the flush (an HTTP/2 stream is reset when its deadline
// passes, even with no write pending); this also replaces any
// http.Server.WriteTimeout for the rest of the response. A writer without
// deadline support (http.ErrNotSupported) is written to without one. When
// Heartbeat is set and nothing was written for that long, Run writes
// ": ping\n".
//
// Run returns the Conn's close cause, always non-nil and always equal to
// Err() afterwards:
//
//   - when ctx ends, Run closes the Conn with context.Cause(ctx) and
//     returns it (context.Canceled when the client went away);
//   - when Close was called or Enqueue found the queue full, it returns that
//     cause without writing what is still queued;
//   - after CloseAfter, it writes the queue and the final frame and returns
//     [ErrClosed];
//   - when a write, flush or deadline fails, it closes the Conn with that
//     error (wrapped, so errors.Is works, e.g. with os.ErrDeadlineExceeded)
//     and returns it.
//
// If the Conn closed while a write was in progress, the first cause wins
// and is what Run returns.
func (c *Conn) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errRunTwice
	}
	c.running = true
	c.mu.Unlock()

	var idle <-chan time.Time
	var timer *time.Timer
	if c.opts.Heartbeat > 0 {
		timer = time.NewTimer(c.opts.Heartbeat)
		defer timer.Stop()
		idle = timer.C
	}
	for {
		heartbeat := false
		select {
		case <-ctx.Done():
			c.Close(context.Cause(ctx))
			return c.Err()
		case <-c.done:
			return c.Err()
		case <-c.wake:
		case <-idle:
			heartbeat = true
		}

		batch, last, open := c.take()
		if !open {
			return c.Err()
		}
		if len(batch) == 0 && !last {
			if !heartbeat {
				continue // nothing new since the last wake-up
			}
			batch = append(batch, ping)
		}
		err := c.write(batch)
		c.release(batch)
		if err != nil {
			c.Close(err)
			return c.Err()
		}
		if last {
			c.Close(ErrClosed)
			return c.Err()
		}
		if timer != nil {
			timer.Reset(c.opts.Heartbeat) // Go ≥1.23: no stale tick survives Reset
		}
	}
}

// take moves the whole queue into a batch for writing; its bytes stay
// counted (as inflight) until release. After CloseAfter the final frame is
// appended and last is true. open is false once the Conn is closed.
func (c *Conn) take() (batch [][]byte, last, open bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, false, false
	}
	batch = c.queue
	c.queue, c.spare = c.spare, nil
	c.inflight, c.queued = c.queued, 0
	if c.draining {
		if len(c.final) > 0 {
			batch = append(batch, c.final)
		}
		c.final, last = nil, true
	}
	return batch, last, true
}

// release forgets a written batch: it drops the frame references, frees the
// batch's bytes from the bound and wakes EnqueueWait waiters.
func (c *Conn) release(batch [][]byte) {
	clear(batch)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight = 0
	if c.err == nil && cap(batch) <= maxSpareFrames {
		c.spare = batch[:0]
	}
	c.wakeWaitersLocked()
}

// write writes batch as one Write and one Flush under the write deadline.
func (c *Conn) write(batch [][]byte) error {
	if err := c.setWriteDeadline(time.Now().Add(c.opts.WriteTimeout)); err != nil {
		return fmt.Errorf("sse: set write deadline: %w", err)
	}
	var err error
	if len(batch) == 1 {
		_, err = c.w.Write(batch[0]) // nothing to coalesce: no copy
	} else {
		buf := getScratch(batch)
		_, err = c.w.Write(*buf)
		putScratch(buf)
	}
	if err != nil {
		return fmt.Errorf("sse: write: %w", err)
	}
	if err := c.rc.Flush(); err != nil {
		return fmt.Errorf("sse: flush: %w", err)
	}
	// The write succeeded; a failure to clear the deadline shows up as an
	// error on the next write, so it is not a reason to close here.
	_ = c.setWriteDeadline(time.Time{})
	return nil
}

func (c *Conn) setWriteDeadline(t time.Time) error {
	if c.noDeadline {
		return nil
	}
	err := c.rc.SetWriteDeadline(t)
	if errors.Is(err, http.ErrNotSupported) {
		c.noDeadline = true
		return nil
	}
	return err
}

// Coalescing buffers are pooled, so an idle Conn holds none. Buffers that
// grew beyond maxPooledScratch are left to the garbage collector, and
// batches larger than that get a buffer of their own exact size.
const (
	minScratch       = 4 << 10
	maxPooledScratch = 64 << 10
)

var scratchPool = sync.Pool{New: func() any {
	b := make([]byte, 0, minScratch)
	return &b
}}

// getScratch returns a buffer holding the concatenation of batch.
func getScratch(batch [][]byte) *[]byte {
	n := 0
	for _, f := range batch {
		n += len(f)
	}
	var buf *[]byte
	if n <= maxPooledScratch {
		buf = scratchPool.Get().(*[]byte)
	} else {
		b := make([]byte, 0, n)
		buf = &b
	}
	b := slices.Grow((*buf)[:0], n)
	for _, f := range batch {
		b = append(b, f...)
	}
	*buf = b
	return buf
}

func putScratch(buf *[]byte) {
	if cap(*buf) > maxPooledScratch {
		return
	}
	*buf = (*buf)[:0]
	scratchPool.Put(buf)
}
