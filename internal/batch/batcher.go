package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/streamer-dev/streamer/internal/startstop"
)

// commitFunc sends COMMIT on conn and reports whether it succeeded.
type commitFunc func(ctx context.Context, conn *pgx.Conn) error

// Where a unit is, as far as the queue is concerned. Guarded by Batcher.mu.
type unitState uint8

const (
	queued    unitState = iota // in the queue, not yet in a batch
	taken                      // in a batch; the flusher owns it
	withdrawn                  // its waiter gave up before it was taken
)

// Whether a taken unit's COMMIT is under way. Changed with compare-and-swap
// by the flusher (idle <-> sending, just before COMMIT and after a failure
// known not to have committed) and by the unit's waiter (idle -> abandoned),
// so that a waiter that gives up can tell "not published" from "maybe".
const (
	idle int32 = iota
	sending
	abandoned
)

// unit is a group of events submitted together: they commit together or
// not at all, and are never split across batches.
type unit struct {
	events []Event
	bytes  int
	seq    uint64    // submission order, from 1
	at     time.Time // when it was queued
	state  unitState // guarded by Batcher.mu
	flight atomic.Int32

	done chan struct{} // closed once ids or err is set; nil for Enqueue
	ids  []int64
	err  error
}

type phase uint8

const (
	notRunning phase = iota // no flusher: submissions fail with ErrClosed
	running                 // the flusher runs and the queue takes submissions
	closing                 // no intake; the flusher drains the queue or is ending
)

type flushWaiter struct {
	seq uint64
	ch  chan struct{}
}

// Batcher coalesces concurrent publishers' events into transactions. See
// the package documentation.
type Batcher struct {
	startstop.Base
	cfg     Config
	log     zerolog.Logger
	signals *TestSignals // never nil

	// commit is the one step tests replace to inject failures around
	// COMMIT. Set by New, never changed after Start.
	commit commitFunc

	wake chan struct{} // capacity 1: a pending wake-up of the flusher

	mu           sync.Mutex
	phase        phase
	queue        []*unit // queue[head:] are queued or withdrawn units, in seq order
	head         int
	qEvents      int // events of queued (not withdrawn) units
	qBytes       int
	qUnits       int
	expected     int    // Publish callers expected back; see callersBack
	lastSeq      uint64 // seq of the latest unit submitted
	takenTo      uint64 // every unit with a seq up to this has left the queue
	resolvedTo   uint64 // every unit with a seq up to this is resolved
	inFlight     int    // batches under way
	flushTo      uint64 // Flush wants units up to this seq sent without delay
	flushWaiters []flushWaiter
	undelivered  []Failure               // enqueued units cut off by the end of a run
	cancelRun    context.CancelCauseFunc // ends the current run's flusher with Close's cause
}

// New returns a Batcher for cfg with defaults applied. Start runs it.
func New(cfg Config) *Batcher {
	cfg = cfg.withDefaults()
	signals := cfg.TestSignals
	if signals == nil {
		signals = &TestSignals{}
	}
	return &Batcher{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("component", "batch").Logger(),
		signals: signals,
		commit:  commitTx,
		wake:    make(chan struct{}, 1),
	}
}

// Start checks that the database answers (so a bad DSN fails here) and
// starts the flusher. The flusher runs until Close or Stop, or until ctx
// ends, which stops it like Stop; a service that must drain after the
// signal that begins its shutdown passes a context that outlives it.
// Start on a running Batcher does nothing (also while a Close drains it);
// after Close or Stop it starts the Batcher again.
func (b *Batcher) Start(ctx context.Context) error {
	// mu is held from StartInit until the phase says running, so that Close
	// sees the run and its phase together.
	b.mu.Lock()
	defer b.mu.Unlock()
	ctx, shouldStart, started, stopped := b.StartInit(ctx)
	if !shouldStart {
		return nil
	}
	fail := func(err error) error {
		// Read the cause before stopped, which cancels ctx with ErrStop.
		stoppedMeanwhile := errors.Is(context.Cause(ctx), startstop.ErrStop)
		stopped()
		if stoppedMeanwhile {
			return nil // a concurrent Stop ended this run before it began
		}
		return err
	}
	if b.cfg.Pool == nil {
		return fail(errors.New("batch: Config.Pool is nil"))
	}
	if err := b.cfg.Pool.Ping(ctx); err != nil {
		return fail(fmt.Errorf("batch: connect: %w", err))
	}
	if len(b.undelivered) > 0 { // the last run ended by its context, with nobody to tell
		b.log.Error().Err(&UndeliveredError{Failures: b.undelivered}).Msg("batch: stopped with events undelivered")
		b.undelivered = nil
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	b.phase, b.cancelRun = running, cancel
	go func() {
		defer stopped()
		started()
		b.run(runCtx)
		cancel(nil)
		b.mu.Lock()
		b.phase = notRunning
		b.mu.Unlock()
	}()
	return nil
}

// Publish submits events as one group and waits until they have committed,
// returning their ids in order. The group is atomic: all its events commit
// in one transaction, or none does. Errors:
//
//   - *RuleError: an event breaks a rule (Index says which); nothing was
//     published.
//   - ErrFull, ErrTooLarge, ErrClosed: not accepted; nothing was published.
//   - ctx's error alone: ctx ended before the events' COMMIT was sent
//     (queued, or between retries); they will never be published.
//   - ErrOutcomeUnknown (wrapping ctx's error): ctx ended while their
//     COMMIT was under way; they may have been published.
//   - a permanent database error; nothing was published.
func (b *Batcher) Publish(ctx context.Context, events []Event) ([]int64, error) {
	if len(events) == 0 {
		return []int64{}, nil
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	u, err := b.submit(events, true)
	if err != nil {
		return nil, err
	}
	select {
	case <-u.done:
		return u.ids, u.err
	case <-ctx.Done():
	}
	cause := context.Cause(ctx)
	if b.withdraw(u) || u.flight.CompareAndSwap(idle, abandoned) {
		return nil, cause
	}
	select {
	case <-u.done:
		return u.ids, u.err
	default:
		return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, cause)
	}
}

// Enqueue submits events as one atomic group and returns at once. Failures
// go to Config.OnError; events still undelivered when Close gives up are
// reported by Close.
func (b *Batcher) Enqueue(events []Event) error {
	if len(events) == 0 {
		return nil
	}
	_, err := b.submit(events, false)
	return err
}

func (b *Batcher) submit(events []Event, wait bool) (*unit, error) {
	size := 0
	for i, e := range events {
		if re := Validate(i, e); re != nil {
			return nil, re
		}
		size += e.size()
	}
	if len(events) > b.cfg.QueueEvents || size > b.cfg.QueueBytes {
		return nil, ErrTooLarge
	}
	u := &unit{events: events, bytes: size, at: time.Now()}
	if wait {
		u.done = make(chan struct{})
	}

	b.mu.Lock()
	if b.phase != running {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	if b.qEvents+len(events) > b.cfg.QueueEvents || b.qBytes+size > b.cfg.QueueBytes {
		b.mu.Unlock()
		return nil, ErrFull
	}
	wasEmpty := b.qEvents == 0
	b.lastSeq++
	u.seq = b.lastSeq
	b.queue = append(b.queue, u)
	b.qEvents += len(events)
	b.qBytes += size
	b.qUnits++
	// The flusher needs waking only when it may be idle, a batch just
	// filled up or the last expected caller is back; otherwise it is
	// committing or timing the current batch.
	poke := wasEmpty || b.qEvents >= b.cfg.MaxBatchEvents || b.qBytes >= b.cfg.MaxBatchBytes ||
		b.callersBack()
	b.mu.Unlock()

	b.signals.Enqueued.Signal(len(events))
	if poke {
		b.poke()
	}
	return u, nil
}

// withdraw takes a unit that is still queued out of the queue; it reports
// whether it did.
func (b *Batcher) withdraw(u *unit) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if u.state != queued {
		return false
	}
	u.state = withdrawn
	b.qEvents -= len(u.events)
	b.qBytes -= u.bytes
	b.qUnits--
	b.poke() // so that the flusher trims it and Flush waiters move on
	return true
}

func (b *Batcher) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Flush sends whatever is queued without waiting for the batch to fill,
// and waits until every group submitted before the call is resolved
// (committed or failed), or until ctx ends.
func (b *Batcher) Flush(ctx context.Context) error {
	b.mu.Lock()
	target := b.lastSeq
	if target <= b.resolvedTo {
		b.mu.Unlock()
		return nil
	}
	b.flushTo = max(b.flushTo, target)
	ch := make(chan struct{})
	b.flushWaiters = append(b.flushWaiters, flushWaiter{seq: target, ch: ch})
	b.mu.Unlock()
	b.poke()

	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Close stops intake (further submissions fail with ErrClosed), sends
// everything queued, and waits for it until ctx ends. Then it stops the
// flusher, cutting off what is left: Publish callers get ErrClosed (not
// sent) or ErrOutcomeUnknown (being committed), and Close returns an
// *UndeliveredError listing the enqueued events it could not deliver.
// Close is safe before Start, more than once, and concurrently with Stop;
// Start starts the Batcher again afterwards.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	stopped, cancel := b.Stopped(), b.cancelRun
	if b.phase == running {
		b.phase = closing
	}
	b.mu.Unlock()
	b.poke()

	select {
	case <-stopped:
	case <-ctx.Done():
		if cancel != nil { // nil only before the first Start
			cancel(fmt.Errorf("close: %w", context.Cause(ctx)))
		}
		<-stopped
	}
	if failures := b.takeUndelivered(); len(failures) > 0 {
		return &UndeliveredError{Failures: failures}
	}
	return nil
}

// Stop stops at once: intake stops, the batch in flight is abandoned and
// queued events are failed with ErrClosed (enqueued ones are logged). It
// blocks until the flusher has exited. Safe before Start and more than once.
func (b *Batcher) Stop() {
	b.mu.Lock()
	if b.phase == running {
		b.phase = closing
	}
	b.mu.Unlock()
	b.Base.Stop()
	if failures := b.takeUndelivered(); len(failures) > 0 {
		b.log.Error().Err(&UndeliveredError{Failures: failures}).Msg("batch: stopped with events undelivered")
	}
}

func (b *Batcher) takeUndelivered() []Failure {
	b.mu.Lock()
	defer b.mu.Unlock()
	failures := b.undelivered
	b.undelivered = nil
	return failures
}

// run is the flusher: it takes batches in queue order, up to MaxInFlight
// at once, each committed (with retries) by a goroutine of its own that
// sends COMMIT only after the batch before it is resolved.
func (b *Batcher) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	prev := make(chan struct{})
	close(prev)
	var wg sync.WaitGroup
	for {
		units, takenTo := b.next(ctx, timer)
		if units == nil {
			break
		}
		mine, before := make(chan struct{}), prev
		wg.Go(func() {
			b.commitUnits(ctx, units, before)
			answered := 0
			for _, u := range units {
				if u.done != nil && u.flight.Load() != abandoned {
					answered++
				}
			}
			<-before // resolve in order, so that resolvedTo only grows
			b.mu.Lock()
			b.inFlight--
			b.expected += answered
			b.advance(takenTo)
			b.mu.Unlock()
			close(mine)
			b.poke()
		})
		prev = mine
	}
	wg.Wait()
	b.failQueued(ctx)
}

// next waits until a batch is due and a slot is free, and takes the batch;
// nil when the flusher should exit (ctx ended, or closing with nothing left).
//
// A batch is due when it is full (MaxBatchEvents, MaxBatchBytes), when its
// oldest unit has waited MaxDelay, on Flush or Close, and also as soon as
// the callers the last batches answered are back (callersBack): a caller
// of Publish waits for its batch, so in a closed loop nobody else is coming
// and waiting out MaxDelay would only idle the database. When MaxDelay
// passes first, some of them did not come back, and the expectation is
// dropped.
func (b *Batcher) next(ctx context.Context, timer *time.Timer) ([]*unit, uint64) {
	for {
		b.mu.Lock()
		b.trimHead()
		if b.inFlight == 0 {
			b.advance(b.takenTo)
		}
		wait := time.Duration(-1)
		switch {
		case b.qEvents > 0 && b.inFlight < b.cfg.MaxInFlight:
			oldest := b.queue[b.head]
			age := time.Since(oldest.at)
			reason := ""
			switch {
			case b.phase != running:
				reason = "closing"
			case b.qEvents >= b.cfg.MaxBatchEvents:
				reason = "events"
			case b.qBytes >= b.cfg.MaxBatchBytes:
				reason = "bytes"
			case b.callersBack():
				reason = "callers"
			case b.flushTo >= oldest.seq:
				reason = "flush"
			case age >= b.cfg.MaxDelay:
				reason = "delay"
				b.expected = 0
			}
			if reason != "" {
				units := b.take()
				b.expected = max(0, b.expected-len(units))
				b.inFlight++
				takenTo := b.takenTo
				b.mu.Unlock()
				b.signals.Taken.Signal(reason)
				return units, takenTo
			}
			wait = b.cfg.MaxDelay - age
		case b.qEvents == 0 && b.phase != running:
			b.mu.Unlock()
			return nil, 0
		}
		b.mu.Unlock()

		var timeout <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			timeout = timer.C
		}
		select {
		case <-b.wake:
		case <-timeout:
		case <-ctx.Done():
			timer.Stop()
			return nil, 0
		}
		timer.Stop()
	}
}

// callersBack reports whether the callers the flusher expects back are
// back: whether at least b.expected units are queued. b.expected counts the
// Publish callers that resolved batches answered, less the units taken
// since, and is reset when MaxDelay passes first; in a closed loop, these
// are the callers about to publish again. Call with mu held.
func (b *Batcher) callersBack() bool {
	return b.expected > 0 && b.qUnits >= b.expected
}

// trimHead drops withdrawn units from the head of the queue. Call with mu held.
func (b *Batcher) trimHead() {
	for b.head < len(b.queue) && b.queue[b.head].state == withdrawn {
		b.takenTo = b.queue[b.head].seq
		b.queue[b.head] = nil
		b.head++
	}
	b.compact()
}

// take removes the next batch from the queue: whole units, in order, up to
// the batch bounds (at least one unit). Call with mu held.
func (b *Batcher) take() []*unit {
	var units []*unit
	n, size := 0, 0
	for b.head < len(b.queue) {
		u := b.queue[b.head]
		if u.state == queued {
			if len(units) > 0 && (n+len(u.events) > b.cfg.MaxBatchEvents || size+u.bytes > b.cfg.MaxBatchBytes) {
				break
			}
			u.state = taken
			b.qEvents -= len(u.events)
			b.qBytes -= u.bytes
			b.qUnits--
			n += len(u.events)
			size += u.bytes
			units = append(units, u)
		}
		b.takenTo = u.seq
		b.queue[b.head] = nil
		b.head++
	}
	b.compact()
	return units
}

// compact reclaims the consumed front of the queue. Call with mu held.
func (b *Batcher) compact() {
	switch {
	case b.head == len(b.queue):
		b.queue, b.head = b.queue[:0], 0
	case b.head >= 1024 && 2*b.head >= len(b.queue):
		n := copy(b.queue, b.queue[b.head:])
		clear(b.queue[n:])
		b.queue, b.head = b.queue[:n], 0
	}
}

// advance records that every unit up to seq is resolved and releases the
// Flush calls waiting for that. Call with mu held.
func (b *Batcher) advance(seq uint64) {
	if seq <= b.resolvedTo {
		return
	}
	b.resolvedTo = seq
	kept := b.flushWaiters[:0]
	for _, w := range b.flushWaiters {
		if w.seq <= seq {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(b.flushWaiters[len(kept):])
	b.flushWaiters = kept
}

// failQueued fails every unit still queued when the flusher exits.
func (b *Batcher) failQueued(ctx context.Context) {
	b.mu.Lock()
	b.phase = max(b.phase, closing)
	var units []*unit
	for _, u := range b.queue[b.head:] {
		if u.state == queued {
			u.state = taken
			units = append(units, u)
		}
	}
	clear(b.queue)
	b.queue, b.head, b.qEvents, b.qBytes, b.qUnits = nil, 0, 0, 0, 0
	b.takenTo = b.lastSeq
	b.mu.Unlock()

	err := fmt.Errorf("%w: not sent (%w)", ErrClosed, causeOr(ctx, errors.New("closed")))
	for _, u := range units {
		b.resolve(u, nil, err)
	}
	b.mu.Lock()
	b.advance(b.lastSeq)
	b.mu.Unlock()
}

// resolve hands a unit its outcome.
func (b *Batcher) resolve(u *unit, ids []int64, err error) {
	if u.done != nil {
		u.ids, u.err = ids, err
		close(u.done)
		return
	}
	if err == nil {
		return
	}
	f := Failure{Events: u.events, Err: err}
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrOutcomeUnknown) {
		b.mu.Lock()
		b.undelivered = append(b.undelivered, f)
		b.mu.Unlock()
		return
	}
	if b.cfg.OnError != nil {
		b.cfg.OnError(f)
		return
	}
	b.log.Error().Err(err).Int("events", len(u.events)).Msg("batch: enqueued events not published")
}
