package sse

import "sync"

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
	queued   int           // bytes in frames
	inflight int           // bytes of the batch being written
	room     chan struct{} // closed when room is made; nil when nobody waits
	draining bool          // CloseAfter was called
	final    []byte        // CloseAfter's frame, until a writer takes it
	err      error         // close cause; nil while open
	done     chan struct{} // closed by closeLocked, once
}

// Frames of a batch are referenced from a [][]byte that the writer reuses;
// a slice grown by a burst beyond this many frames is dropped rather than
// kept.
const maxSpareFrames = 64

func (q *frameQueue) fitsLocked(n int) bool {
	pending := q.queued + q.inflight
	return pending == 0 || pending+n <= q.maxBytes
}

// pushLocked queues frame and reports whether the writer needs a wake-up:
// only the first frame after the writer took the queue does, since the
// writer takes the whole queue when it wakes.
func (q *frameQueue) pushLocked(frame []byte) (first bool) {
	if len(frame) == 0 {
		return false
	}
	q.frames = append(q.frames, frame)
	q.queued += len(frame)
	return len(q.frames) == 1
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
	close(q.done) // wakes the writer and every EnqueueWait
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
func (q *frameQueue) take() (batch [][]byte, last, open bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return nil, false, false
	}
	batch = q.frames
	q.frames, q.spare = q.spare, nil
	q.inflight, q.queued = q.queued, 0
	if q.draining {
		if len(q.final) > 0 {
			batch = append(batch, q.final)
		}
		q.final, last = nil, true
	}
	return batch, last, true
}

// releaseLocked forgets a written batch: it drops the frame references,
// frees the batch's bytes from the bound, keeps the slice for reuse and
// wakes EnqueueWait waiters.
func (q *frameQueue) releaseLocked(batch [][]byte) {
	clear(batch)
	q.inflight = 0
	if q.err == nil && cap(batch) <= maxSpareFrames {
		q.spare = batch[:0]
	}
	q.wakeWaitersLocked()
}
