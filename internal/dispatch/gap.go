package dispatch

import (
	"context"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/sse"
)

// Gap detection (issue #12). Retention prunes a prefix of the delivery order
// and records the newest position it removed, the horizon, in
// streamer.pruned in the same transaction. Every read selects the horizon in
// the same statement as its events (one snapshot), so a reader whose cursor
// c is before the horizon knows that events after c are gone, and the events
// the same statement returned are exactly the oldest retained ones after c:
// it sends the gap frame, then those events. A reader at or after the horizon
// lost nothing and sends no gap. The horizon is global, so a reader of some
// streams may report a gap that only other streams had (the contract allows
// it).

// GapEvent is the SSE event type of the gap frame.
const GapEvent = "streamer.gap"

// gapFrame returns the frame that tells a client events after its position
// were pruned. It carries no id: the client's Last-Event-ID stays at the
// last event it received, so it neither moves backwards nor past events not
// yet sent, and a client that reconnects before the next event is told
// again. "oldest" is the oldest resume token that has lost nothing, the
// horizon: every event after it is retained, and the next event the
// connection gets comes after it.
func gapFrame(horizon cursor.Position) []byte {
	var buf [80]byte
	data := append(buf[:0], `{"reason":"retention","oldest":"`...)
	data = horizon.Append(data)
	data = append(data, `"}`...)
	return sse.AppendEvent(make([]byte, 0, 128), "", GapEvent, string(data))
}

// gapBefore reports whether a reader at from lost events to the horizon h.
func gapBefore(from, h cursor.Position) bool { return from.Less(h) }

// liveHorizon handles the horizon h of a live read that started at d.head,
// before the read's events are fanned out. When h is past d.head, a prune
// overtook the live reader (for example streamer.prune('0') right after a
// publish): the events in between were never read, so live subscribers that
// have not scanned up to h get the gap frame now, and subscribers still
// replaying check h when they join (checkJoinGap), since their buffers miss
// those events too. When h is not past d.head, the live reader read
// everything that was pruned before it was pruned, and delivered or
// buffered it for every subscriber connected then.
func (d *Dispatcher) liveHorizon(h cursor.Position) {
	d.cache.advance(h)
	if !gapBefore(d.head, h) {
		return
	}
	// Monotonic: after every read d.head is at or after the read's horizon.
	d.liveLost = h
	frame := gapFrame(h)
	for _, st := range d.states {
		if st.replay == nil && gapBefore(st.scan, h) {
			d.enqueueGap(st, frame)
		}
	}
}

// checkJoinGap is called when st's replay has finished and st has joined
// the registry, before its buffered events are enqueued. When a live read
// skipped pruned events (liveHorizon) past the replay's cursor, the replay
// read ended before that prune and the buffer lacks them: st gets the gap
// frame. It reports false when st was dropped.
func (d *Dispatcher) checkJoinGap(st *subState) bool {
	if !gapBefore(st.scan, d.liveLost) {
		return true
	}
	return d.enqueueGap(st, gapFrame(d.liveLost))
}

// enqueueGap queues a gap frame on the live subscriber st, dropping it like
// deliver does when it cannot keep up.
func (d *Dispatcher) enqueueGap(st *subState, frame []byte) bool {
	return d.queuedOn(st, st.sub.Enqueue(frame))
}

// replayGap returns the gap frame for a replay read from from whose
// snapshot had horizon h, or nil when nothing after from was pruned. Every
// replay read from the database checks; a page from the cache was read
// when its start was at or after the horizon (pageCache.advance) and is
// served whole, and the read after it checks again.
func replayGap(from, h cursor.Position) []byte {
	if !gapBefore(from, h) {
		return nil
	}
	return gapFrame(h)
}

// advance records the pruned horizon h of a read and drops every page that
// starts before it: such a page may hold pruned events, and a replay from
// its start must read the database, which reports the gap. Pages that start
// at or after h hold retained events only. Safe for concurrent use; the
// horizon only moves forward.
func (c *pageCache) advance(h cursor.Position) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.horizon.Less(h) {
		return
	}
	c.horizon = h
	for el := c.order.Front(); el != nil; {
		next := el.Next()
		if cp := el.Value.(*cachedPage); cp.key.from.Less(h) {
			c.order.Remove(el)
			delete(c.pages, cp.key)
			c.size -= cp.size
		}
		el = next
	}
}

// horizonQuery reads the pruned horizon alone (retention.HorizonSQL).
const horizonQuery = `SELECT seq, id FROM streamer.pruned`

// cachedPageRetained reports whether a cached page starting at from may be
// served: whether from is at or after the pruned horizon now. A full page
// is fixed history as long as none of it is pruned, and pruning removes a
// prefix, so then the cached page is exactly what a read at this moment
// would return, and nothing before it is missing: serving it is equivalent
// to a database read at the horizon's snapshot. (A prune after that is as
// if it came after the read.) When from is behind the horizon, or the
// horizon cannot be read, the replay reads the database, whose statement
// checks the gap. One single-row read per cached page, instead of the page.
func (d *Dispatcher) cachedPageRetained(ctx context.Context, from cursor.Position) bool {
	var h cursor.Position
	if err := d.cfg.Pool.QueryRow(ctx, horizonQuery).Scan(&h.Seq, &h.ID); err != nil {
		return false
	}
	d.cache.advance(h)
	return !gapBefore(from, h)
}
