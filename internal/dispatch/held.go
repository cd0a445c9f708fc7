package dispatch

import (
	"time"

	"github.com/streamer-dev/streamer/internal/sse"
)

// maxHold bounds how long a loop turn holds the frames it queued before
// releasing them: a turn that fans a full page out to many thousands of
// subscribers releases what it queued so far every maxHold, rather than
// leaving every connection unwritten until the whole page is queued.
const maxHold = 2 * time.Millisecond

// inlineRelease is the most subscribers one release writes to on the
// dispatcher goroutine (see releaseHeld).
const inlineRelease = 32

// writeReleaser is a Subscriber that can write its held frames on the
// releasing goroutine without waiting (sse.Conn.ReleaseWrite).
type writeReleaser interface{ ReleaseWrite() }

var _ writeReleaser = (*sse.Conn)(nil)

// hold lists st for releaseHeld once it was given a frame with
// EnqueueHeld, and releases early when the turn has held frames for
// maxHold (the clock is read once every 256 deliveries).
func (d *Dispatcher) hold(st *subState) {
	if !st.held {
		if len(d.held) == 0 {
			d.heldSince = time.Now()
		}
		st.held = true
		d.held = append(d.held, st)
	}
	if d.queued%256 == 0 && time.Since(d.heldSince) > maxHold {
		d.releaseHeld()
	}
}

// releaseHeld lets every subscriber given frames with EnqueueHeld since
// the last release write them: one wake per subscriber per loop turn,
// after all of the turn's frames are queued, so that each connection
// writes the turn's frames in one write rather than starting a write at
// the turn's first frame.
//
// A release of at most inlineRelease subscribers lets each that can
// (writeReleaser: an sse.Conn) write its frames itself, on this goroutine,
// with one non-blocking write; see sse.Conn.ReleaseWrite. Handing a
// connection to a hub worker costs about a write (the worker wakes and
// sleeps again), so a turn that reached a few connections (many streams,
// few events each) is cheaper written here; a larger one goes to the
// workers, which write in parallel, as before.
func (d *Dispatcher) releaseHeld() {
	inline := len(d.held) <= inlineRelease
	for _, st := range d.held {
		st.held = false
		// A no-op on a subscriber dropped meanwhile.
		if w, ok := st.sub.(writeReleaser); ok && inline {
			w.ReleaseWrite()
		} else {
			st.sub.Release()
		}
	}
	clear(d.held)
	d.held = d.held[:0]
}

// endTurn ends a turn of the dispatcher loop: the frames it queued are
// released to their writers and counted as delivered.
func (d *Dispatcher) endTurn() {
	d.releaseHeld()
	d.flushDelivered()
}
