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

// handlerWriter is the writer state of a Conn written by [Conn.Run] on
// the goroutine that owns its ResponseWriter (HTTP/2 streams, and HTTP/1.1
// ones not handed to a hub). Only Run uses it, after taking it from the
// Conn under its mutex.
type handlerWriter struct {
	w          http.ResponseWriter
	rc         *http.ResponseController
	noDeadline bool // SetWriteDeadline is not supported
}

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
	hw := c.hw
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

		batch, commits, last, open := c.take()
		if !open {
			return c.Err()
		}
		if len(batch) == 0 && !last {
			if !heartbeat {
				continue // nothing new since the last wake-up
			}
			batch = append(batch, ping)
		}
		err := hw.write(batch, c.opts.WriteTimeout)
		if err == nil {
			observeLag(c.opts.Lag, commits)
		}
		c.mu.Lock()
		c.releaseLocked(batch, commits)
		c.mu.Unlock()
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

// write writes batch as one Write and one Flush under the write deadline.
func (hw *handlerWriter) write(batch [][]byte, timeout time.Duration) error {
	if err := hw.setWriteDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("sse: set write deadline: %w", err)
	}
	var err error
	if len(batch) == 1 {
		_, err = hw.w.Write(batch[0]) // nothing to coalesce: no copy
	} else {
		buf := getScratch(batch)
		_, err = hw.w.Write(*buf)
		putScratch(buf)
	}
	if err != nil {
		return fmt.Errorf("sse: write: %w", err)
	}
	if err := hw.rc.Flush(); err != nil {
		return fmt.Errorf("sse: flush: %w", err)
	}
	// The write succeeded; a failure to clear the deadline shows up as an
	// error on the next write, so it is not a reason to close here.
	_ = hw.setWriteDeadline(time.Time{})
	return nil
}

func (hw *handlerWriter) setWriteDeadline(t time.Time) error {
	if hw.noDeadline {
		return nil
	}
	err := hw.rc.SetWriteDeadline(t)
	if errors.Is(err, http.ErrNotSupported) {
		hw.noDeadline = true
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
