package dispatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/registry"
	"github.com/streamer-dev/streamer/internal/sse"
)

// Subscriber is where the dispatcher puts a connection's frames. sse.Conn
// implements it.
type Subscriber interface {
	// Enqueue queues a frame without waiting; false means the subscriber
	// could not keep up and has been closed.
	Enqueue(frame []byte) bool
	// EnqueueWait queues a frame, waiting for room (replay backpressure).
	EnqueueWait(ctx context.Context, frame []byte) error
	// Close ends the subscriber with a cause.
	Close(cause error)
	// Done is closed once the subscriber is closed.
	Done() <-chan struct{}
}

var _ Subscriber = (*sse.Conn)(nil)

// ErrStopped is returned by Subscribe once the dispatcher is stopping.
var ErrStopped = errors.New("dispatcher stopped")

// Config configures a Dispatcher.
type Config struct {
	// Pool serves the dispatcher's reads; it needs at least ReplayWorkers+1
	// connections to run every reader at once.
	Pool *pgxpool.Pool
	// Registry receives subscribers once they are live. Required.
	Registry *registry.Registry[Subscriber]
	// PageSize bounds the events one read returns. Default 500.
	PageSize int
	// ReplayWorkers bounds concurrent replays (and so the pool connections
	// they hold). Default 4.
	ReplayWorkers int
	// MaxBuffered bounds the live events held for one connecting subscriber
	// while its replay runs; past it the buffer is dropped and the replay
	// runs another round from where it got to. Default 256.
	MaxBuffered int
	// RetryInterval is how long to wait before reading again after a failed
	// live read. Default 1s.
	RetryInterval time.Duration
	// PageCacheBytes bounds the replay page cache (encoded frames of full
	// pages, shared by replays that resume from the same place). Default
	// 32 MiB; negative disables it.
	PageCacheBytes int
	// ReplayRate bounds the events all replays together hand to their
	// connections per second, so that a reconnect storm leaves CPU for live
	// delivery; it is taken a page at a time. Zero or negative: no bound.
	ReplayRate float64
	Logger     zerolog.Logger
	// TestSignals, when set and initialised, report progress to tests.
	TestSignals *TestSignals
}

func (c *Config) setDefaults() {
	if c.PageSize <= 0 {
		c.PageSize = 500
	}
	if c.ReplayWorkers <= 0 {
		c.ReplayWorkers = 4
	}
	if c.MaxBuffered <= 0 {
		c.MaxBuffered = 256
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = time.Second
	}
	if c.PageCacheBytes == 0 {
		c.PageCacheBytes = 32 << 20
	}
	if c.TestSignals == nil {
		c.TestSignals = &TestSignals{}
	}
}

// Dispatcher reads committed events and fans them out. See the package
// documentation for the ordering argument.
type Dispatcher struct {
	cfg Config

	wakeCh  chan struct{}
	cmdCh   chan command
	jobs    chan replayJob
	results chan replayResult

	cache *pageCache // nil when disabled; shared by the replay workers
	// pace spaces out the replay workers' pages; nil without a ReplayRate.
	pace *rate.Limiter

	startStop sync.Mutex
	cancel    context.CancelCauseFunc
	stopped   chan struct{} // closed when the goroutines have exited
	done      chan struct{} // closed when Stop begins: unblocks senders

	// Owned by the run goroutine.
	head     cursor.Position
	subs     map[Subscriber]*subState
	inflight map[string]map[*subState]struct{}
	interest map[string]int
	pending  []replayJob
	retry    *time.Timer
}

// subState is the dispatcher's view of one subscriber.
type subState struct {
	sub     Subscriber
	streams []string
	// scan: every event up to here has been considered for this subscriber
	// (delivered, or skipped by a filter). Separate from lastSent so that
	// per-connection filtering can skip events without losing its place.
	scan     cursor.Position
	lastSent cursor.Position
	// While replaying: live events read meanwhile, or overflow once more
	// than MaxBuffered arrived.
	replaying bool
	buffer    []*event
	overflow  bool
}

type commandKind int

const (
	cmdConnect commandKind = iota
	cmdDisconnect
)

type command struct {
	kind    commandKind
	sub     Subscriber
	streams []string
	from    *cursor.Position
	reply   chan cursor.Position
}

type replayJob struct {
	sub     Subscriber
	streams []string
	from    cursor.Position
}

type replayResult struct {
	sub    Subscriber
	cursor cursor.Position
	sent   int
	err    error
}

// New returns a dispatcher; Start runs it.
func New(cfg Config) *Dispatcher {
	cfg.setDefaults()
	var cache *pageCache
	if cfg.PageCacheBytes > 0 {
		cache = newPageCache(cfg.PageCacheBytes)
	}
	var pace *rate.Limiter
	if cfg.ReplayRate > 0 {
		pace = rate.NewLimiter(rate.Limit(cfg.ReplayRate), cfg.PageSize)
	}
	return &Dispatcher{
		cfg:     cfg,
		cache:   cache,
		pace:    pace,
		wakeCh:  make(chan struct{}, 1),
		cmdCh:   make(chan command, 256),
		jobs:    make(chan replayJob),
		results: make(chan replayResult, cfg.ReplayWorkers),
	}
}

// Start reads the current head synchronously (so a bad pool fails here) and
// starts the dispatcher goroutine and its replay workers.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.startStop.Lock()
	defer d.startStop.Unlock()
	if d.cancel != nil {
		return errors.New("dispatcher already started")
	}
	head, err := readHead(ctx, d.cfg.Pool)
	if err != nil {
		return fmt.Errorf("start dispatcher: %w", err)
	}
	d.head = head
	d.subs = make(map[Subscriber]*subState)
	d.inflight = make(map[string]map[*subState]struct{})
	d.interest = make(map[string]int)

	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	d.cancel = cancel
	d.stopped = make(chan struct{})
	d.done = make(chan struct{})

	var wg sync.WaitGroup
	for range d.cfg.ReplayWorkers {
		wg.Go(func() { d.replayWorker(runCtx) })
	}
	wg.Go(func() { d.run(runCtx) })
	go func() {
		wg.Wait()
		close(d.stopped)
	}()
	return nil
}

// Stop ends the dispatcher and waits for its goroutines. Subscribers are not
// closed: their owners (the HTTP handlers) end them. Stop is safe to call
// before Start and more than once.
func (d *Dispatcher) Stop() {
	d.startStop.Lock()
	defer d.startStop.Unlock()
	if d.cancel == nil {
		return
	}
	select {
	case <-d.done:
	default:
		close(d.done)
	}
	d.cancel(ErrStopped)
	<-d.stopped
}

// Wake asks the dispatcher to read new commits. It never blocks; wakes that
// arrive while one is pending are folded into it.
func (d *Dispatcher) Wake() {
	select {
	case d.wakeCh <- struct{}{}:
	default:
	}
}

// Subscribe registers sub for streams from a resume position (nil: from
// now). It returns once the dispatcher has taken the subscriber, with the
// position its delivery starts after: every event after it on the streams
// will be enqueued exactly once, in order. The caller must call Unsubscribe
// when the subscriber ends.
func (d *Dispatcher) Subscribe(ctx context.Context, sub Subscriber, streams []string, from *cursor.Position) (cursor.Position, error) {
	reply := make(chan cursor.Position, 1)
	cmd := command{kind: cmdConnect, sub: sub, streams: slices.Clone(streams), from: from, reply: reply}
	if err := d.send(ctx, cmd); err != nil {
		return cursor.Position{}, err
	}
	select {
	case pos := <-reply:
		return pos, nil
	case <-ctx.Done():
		d.Unsubscribe(sub)
		return cursor.Position{}, ctx.Err()
	case <-d.done:
		return cursor.Position{}, ErrStopped
	}
}

// Unsubscribe forgets sub. It does not close it.
func (d *Dispatcher) Unsubscribe(sub Subscriber) {
	_ = d.send(context.Background(), command{kind: cmdDisconnect, sub: sub})
}

func (d *Dispatcher) send(ctx context.Context, cmd command) error {
	d.startStop.Lock()
	done := d.done
	d.startStop.Unlock()
	if done == nil {
		return ErrStopped
	}
	select {
	case d.cmdCh <- cmd:
		return nil
	case <-done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}
