package sse

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// A connection's batches, once its first few are written, cost no
// allocation: the writer gives the batch's slices back for the next
// batch. Batch sizes up to maxSpareFrames, including those whose slice
// append grew past maxSpareFrames of capacity (a size class: 64 frames
// get room for 74).
func TestFrameQueueReusesBatchSlices(t *testing.T) {
	// Not parallel: AllocsPerRun counts the allocations of every goroutine.
	frame := []byte("id: 1\ndata: x\n\n")
	for _, frames := range []int{1, 25, 50, maxSpareFrames} {
		t.Run(fmt.Sprint(frames, " frames"), func(t *testing.T) {
			q := &frameQueue{maxBytes: 1 << 20, done: make(chan struct{})}
			turn := func() {
				q.mu.Lock()
				for i := range frames {
					q.pushLocked(frame, int64(i+1))
				}
				q.mu.Unlock()
				batch, commits, last, open := q.take()
				if !open || last || len(batch) != frames || len(commits) != frames {
					panic("take returned something else than the turn's frames")
				}
				q.mu.Lock()
				q.releaseLocked(batch, commits)
				q.mu.Unlock()
			}
			turn() // the two slices the queue alternates between
			turn()
			require.Zero(t, testing.AllocsPerRun(100, turn))
		})
	}
}

// A burst's slices are not kept: a connection that once received a large
// batch holds no large slice for the rest of its life.
func TestFrameQueueDropsBurstSlices(t *testing.T) {
	t.Parallel()
	frame := []byte("id: 1\ndata: x\n\n")
	q := &frameQueue{maxBytes: 1 << 20, done: make(chan struct{})}
	q.mu.Lock()
	for range maxSpareFrames + 1 {
		q.pushLocked(frame, 1)
	}
	q.mu.Unlock()
	batch, commits, _, _ := q.take()
	q.mu.Lock()
	q.releaseLocked(batch, commits)
	q.mu.Unlock()
	require.Nil(t, q.spare)
	require.Nil(t, q.spareC)
}
