package sse

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamer-dev/streamer/internal/defaults"
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
	// syscall each), where the hub cannot watch its connections for that
	// (see closeWatch: on Linux it does, and never peeks); a connection
	// written to more often learns of it from its writes, by the second
	// write after the client left. Default 3s.
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
	ready   []*hubConn
	stalled []*hubConn
	conns   map[*hubConn]struct{}

	// watch reports the attached connections whose clients closed them
	// (nil: unsupported or not running; quiet Conns are then peeked at).
	// watched names the registered Conns by their id, lastID the last id
	// given. noWatch (tests) runs the hub without it.
	watch   *closeWatch
	watched map[uint64]*hubConn
	lastID  uint64
	noWatch bool

	goroutines atomic.Int32 // workers and sweeper running
}

// HubStats is a snapshot of what a Hub holds.
type HubStats struct {
	Conns      int // attached Conns not yet finished
	Goroutines int // workers and sweeper running
}

// NewHub returns a hub; Start runs it.
func NewHub(opts HubOptions) *Hub {
	defaults.Positive(&opts.Workers, 4)
	defaults.Positive(&opts.WriteSlice, 20*time.Millisecond)
	defaults.Positive(&opts.Tick, 50*time.Millisecond)
	defaults.Positive(&opts.PeekInterval, 3*time.Second)
	h := &Hub{opts: opts, conns: make(map[*hubConn]struct{})}
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
	var watch *closeWatch
	if !h.noWatch {
		watch, _ = newCloseWatch() // without it, quiet Conns are peeked at
	}
	h.mu.Lock()
	h.running = true
	h.watch, h.watched = watch, make(map[uint64]*hubConn)
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
	if watch != nil {
		h.goroutines.Add(1)
		wg.Go(func() {
			defer h.goroutines.Add(-1)
			watch.wait(h.peerGone)
		})
	}
	go func() {
		defer stopped()
		started()
		<-ctx.Done()
		h.shutdown(&wg, watch)
	}()
	return nil
}

// shutdown refuses further Attaches, waits for the workers, the sweeper
// and the close watcher, then closes (with ErrClosed) and finishes every
// Conn still attached, and releases the watch.
func (h *Hub) shutdown(wg *sync.WaitGroup, watch *closeWatch) {
	h.mu.Lock()
	h.running = false
	conns := make([]*hubConn, 0, len(h.conns))
	for hc := range h.conns {
		conns = append(conns, hc)
	}
	h.mu.Unlock()
	h.cond.Broadcast()
	if watch != nil {
		watch.stopWait()
	}
	wg.Wait()
	for _, hc := range conns {
		hc.c.Close(ErrClosed)
		hc.finish()
	}
	h.mu.Lock()
	clear(h.ready)
	clear(h.stalled)
	h.ready, h.stalled = nil, nil
	h.watch, h.watched = nil, nil
	h.mu.Unlock()
	if watch != nil {
		watch.close()
	}
}

// watchLocked registers hc with the close watch, if the hub has one. Call
// with h.mu held while the hub is running.
func (h *Hub) watchLocked(hc *hubConn) {
	if h.watch == nil {
		return
	}
	h.lastID++
	if h.watch.add(hc.raw, h.lastID) {
		hc.watchID = h.lastID
		h.watched[h.lastID] = hc
	}
}

// peerGone closes the Conn registered under id, whose client closed the
// connection (called by the close watcher).
func (h *Hub) peerGone(id uint64) {
	h.mu.Lock()
	hc := h.watched[id]
	h.mu.Unlock()
	if hc != nil {
		hc.c.Close(ErrPeerClosed)
	}
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

// schedule puts hc on the ready list unless it is there or being written.
func (h *Hub) schedule(hc *hubConn) {
	hc.c.mu.Lock()
	push := hc.claimLocked()
	hc.c.mu.Unlock()
	if push {
		h.push(hc)
	}
}

func (h *Hub) push(hc *hubConn) {
	h.mu.Lock()
	h.ready = append(h.ready, hc)
	h.mu.Unlock()
	h.cond.Signal()
}

// park sets hc aside for the sweeper to retry.
func (h *Hub) park(hc *hubConn) {
	h.mu.Lock()
	h.stalled = append(h.stalled, hc)
	h.mu.Unlock()
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
		hc := h.ready[0]
		h.ready[0] = nil
		h.ready = h.ready[1:]
		h.mu.Unlock()
		hc.serve()
	}
}

// sweep retries stalled writes every tick, and every second writes
// heartbeats and, on Conns the close watch does not cover, looks for
// clients that went away.
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
			for _, hc := range stalled {
				h.push(hc)
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
	conns := make([]*hubConn, 0, len(h.conns))
	for hc := range h.conns {
		conns = append(conns, hc)
	}
	h.mu.Unlock()
	for _, hc := range conns {
		c := hc.c
		if hb := c.opts.Heartbeat; hb > 0 && now.UnixNano()-hc.lastSent.Load() >= int64(hb) {
			c.Enqueue(ping)
		}
		// A Conn written to within the interval needs no peek: writing to
		// a departed client fails by the second write (the first draws a
		// reset), so only quiet Conns are checked; and a watched one needs
		// none at all.
		quiet := hc.watchID == 0 && now.UnixNano()-hc.lastSent.Load() >= int64(h.opts.PeekInterval)
		if quiet && now.UnixNano()-hc.lastPeek >= int64(h.opts.PeekInterval) {
			hc.lastPeek = now.UnixNano()
			if peerClosed(hc.raw) {
				c.Close(ErrPeerClosed)
			}
		}
	}
}
