package startstop

import (
	"context"
	"errors"
	"sync"
)

// Service is what every long-running piece of streamer implements.
type Service interface {
	// Start starts the service and returns once it runs; the service runs
	// until ctx is done or Stop is called.
	Start(ctx context.Context) error
	// Stop stops the service and waits for its goroutines to exit. Safe
	// before Start and more than once.
	Stop()
}

// ErrStop is the cancellation cause a service's context carries after Stop.
var ErrStop = errors.New("service stopped")

// closedChan is returned by Stopped before the first Start.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Base carries the lifecycle bookkeeping of one service. The zero value is
// ready to use; embed it and call StartInit from Start.
type Base struct {
	mu      sync.Mutex
	cancel  context.CancelCauseFunc // nil while not running
	started chan struct{}           // closed by the started func of this run
	stopped chan struct{}           // closed by the stopped func of this run
}

// StartInit begins a Start. When the service is already running it returns
// shouldStart false and the caller returns nil. Otherwise it returns the
// context the service's goroutines must run under and two functions: started,
// to call once the service runs (optional; it closes [Base.Started]), and
// stopped, to call exactly once after every goroutine of the service has
// exited, or when Start fails before starting any.
func (b *Base) StartInit(ctx context.Context) (runCtx context.Context, shouldStart bool, started, stopped func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancel != nil {
		return ctx, false, func() {}, func() {}
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	b.cancel = cancel
	startedCh := make(chan struct{})
	stoppedCh := make(chan struct{})
	b.started, b.stopped = startedCh, stoppedCh
	var startOnce, stopOnce sync.Once
	started = func() { startOnce.Do(func() { close(startedCh) }) }
	stopped = func() {
		stopOnce.Do(func() {
			cancel(ErrStop) // release the context's resources; no-op if done
			b.mu.Lock()
			if b.stopped == stoppedCh {
				b.cancel = nil
			}
			b.mu.Unlock()
			started() // a run that never reported started is over all the same
			close(stoppedCh)
		})
	}
	return runCtx, true, started, stopped
}

// Stop cancels the running service's context with [ErrStop] and waits until
// its goroutines have called stopped. A no-op when the service is not running.
func (b *Base) Stop() {
	b.mu.Lock()
	cancel, stopped := b.cancel, b.stopped
	b.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel(ErrStop)
	<-stopped
}

// Started is closed once the current (or last) run called started. Before
// the first Start it is closed already.
func (b *Base) Started() <-chan struct{} { return b.orClosed(&b.started) }

// Stopped is closed once the current (or last) run has stopped. Before the
// first Start it is closed already.
func (b *Base) Stopped() <-chan struct{} { return b.orClosed(&b.stopped) }

// orClosed reads *ch under b.mu: the channel of the current (or last) run,
// or, before the first Start, a closed one.
func (b *Base) orClosed(ch *chan struct{}) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if *ch == nil {
		return closedChan
	}
	return *ch
}
