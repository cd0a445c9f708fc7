package sse

import (
	"sync"
	"time"
)

// frameQueue is the bounded outbound queue of one connection: the frames
// accepted and not yet written, the bound on their bytes, the graceful end
// (CloseAfter's final frame) and the close cause. It knows nothing about
// who writes the frames; a writer takes the whole queue as one batch and
// releases it once written.
//
// Every field is guarded by mu, which is never held across anything but a
// few slice operations. The hub-driven writer keeps its scheduling flags
// under the same mutex (see hubConn), so that queuing a frame and claiming
// the connection for a worker are one step.
type frameQueue struct {
	mu       sync.Mutex
	maxBytes int           // Options.MaxQueueBytes
	frames   [][]byte      // accepted frames not yet taken; read-only
	spare    [][]byte      // the last batch slice, emptied, for reuse
	commits  []int64       // commit times (unix nanos) of the event frames in frames
	spareC   []int64       // the last batch's commits slice, emptied, for reuse
	queued   int           // bytes in frames
	inflight int           // bytes of the batch being written
	room     chan struct{} // closed when room is made; nil when nobody waits
	draining bool          // CloseAfter was called
	held     bool          // EnqueueHeld queued frames and Release has not been called since
	holdMax  int           // queued bytes past which held frames wake the writer anyway
	final    []byte        // CloseAfter's frame, until a writer takes it
	err      error         // close cause; nil while open
	done     chan struct{} // closed by closeLocked, once
}

// Held frames (EnqueueHeld) wake the writer anyway once this many bytes
// are queued, or half of MaxQueueBytes if that is less: a write of 64 KiB
// costs about as much per byte as a larger one, and a held queue wakes
// its writer with half the slow-consumer bound still free.
const maxHoldBytes = 64 << 10

// Frames of a batch are referenced from a [][]byte that the writer reuses;
// the slice of a batch of more than this many frames (a burst) is dropped
// rather than kept. The test is on the batch's length, not its capacity:
// append rounds a slice's capacity up to an allocation size class (a
// [][]byte grown one frame at a time to 50 or 64 frames has room for 74),
// so a bound on capacity would drop, and reallocate every batch, the very
// slices it is meant to keep. A kept slice never grew past what this many
// frames need.
const maxSpareFrames = 64

func (q *frameQueue) fitsLocked(n int) bool {
	pending := q.queued + q.inflight
	return pending == 0 || pending+n <= q.maxBytes
}

// pushLocked queues frame and reports whether the writer needs a wake-up:
// only the first frame after the writer took the queue does, since the
// writer takes the whole queue when it wakes. committed is the frame's
// event's commit time in unix nanoseconds, or 0 for a frame that is not a
// live event (no delivery lag is observed for it).
func (q *frameQueue) pushLocked(frame []byte, committed int64) (first bool) {
	if len(frame) == 0 {
		return false
	}
	if committed != 0 {
		q.commits = append(q.commits, committed)
	}
	q.frames = append(q.frames, frame)
	q.queued += len(frame)
	return len(q.frames) == 1
}

// writableLocked reports whether frames are queued that the writer should
// write now: any, unless they are held (EnqueueHeld, until Release) and
// below holdMax.
func (q *frameQueue) writableLocked() bool {
	return len(q.frames) > 0 && (!q.held || q.queued >= q.holdMax)
}

// closeLocked closes the queue with cause (ErrClosed if nil) unless it is
// closed already, dropping what is queued.
func (q *frameQueue) closeLocked(cause error) {
	if q.err != nil {
		return
	}
	if cause == nil {
		cause = ErrClosed
	}
	q.err = cause
	clear(q.frames) // drop the references to shared frames
	q.frames, q.spare, q.final, q.queued = nil, nil, nil, 0
	q.commits, q.spareC = nil, nil // never observed: they were not written
	close(q.done)                  // wakes the writer and every EnqueueWait
}

func (q *frameQueue) wakeWaitersLocked() {
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
}

// take moves the whole queue into a batch for writing; its bytes stay
// counted (as inflight) until release. After CloseAfter the final frame is
// appended and last is true. open is false once the queue is closed.
// commits are the commit times of the batch's event frames (see
// pushLocked), for the writer to observe once the batch is written.
func (q *frameQueue) take() (batch [][]byte, commits []int64, last, open bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return nil, nil, false, false
	}
	batch, commits = q.frames, q.commits
	q.frames, q.spare = q.spare, nil
	q.commits, q.spareC = q.spareC, nil
	q.inflight, q.queued = q.queued, 0
	if q.draining {
		if len(q.final) > 0 {
			batch = append(batch, q.final)
		}
		q.final, last = nil, true
	}
	return batch, commits, last, true
}

// releaseLocked forgets a written batch: it drops the frame references,
// frees the batch's bytes from the bound, keeps the slices for reuse and
// wakes EnqueueWait waiters.
func (q *frameQueue) releaseLocked(batch [][]byte, commits []int64) {
	clear(batch)
	q.inflight = 0
	if q.err == nil && len(batch) <= maxSpareFrames {
		q.spare = batch[:0]
	}
	if q.err == nil && len(commits) <= maxSpareFrames {
		q.spareC = commits[:0]
	}
	q.wakeWaitersLocked()
}

// observeLag reports the delivery lag of each event frame of a batch that
// was just written in full: from its commit time to now. One clock read
// per batch, no allocation; nothing when no observer is configured.
func observeLag(lag LagObserver, commits []int64) {
	if lag == nil || len(commits) == 0 {
		return
	}
	now := time.Now().UnixNano()
	for _, at := range commits {
		lag.DeliveryLag(time.Duration(now - at))
	}
}
