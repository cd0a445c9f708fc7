package dispatch

import "time"

// maxHold bounds how long a loop turn holds the frames it queued before
// releasing them: a turn that fans a full page out to many thousands of
// subscribers releases what it queued so far every maxHold, rather than
// leaving every connection unwritten until the whole page is queued.
const maxHold = 2 * time.Millisecond

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
func (d *Dispatcher) releaseHeld() {
	for _, st := range d.held {
		st.held = false
		st.sub.Release() // a no-op on a subscriber dropped meanwhile
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
