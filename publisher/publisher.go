package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/streamer-dev/streamer/internal/batch"
)

// Event is one event to publish.
type Event struct {
	Stream string // 1-200 characters from A-Z a-z 0-9 _ . : / @ = + -, starting with a letter or digit
	Type   string // the SSE event type; "" for none (NULL); 1-64 characters from A-Z a-z 0-9 _ . : -, not starting with "streamer."
	Data   string // UTF-8 text without NUL, at most 1 MiB
	// Audience, when not nil, restricts who may see the event: only a
	// connection whose token's sub or one of whose streamer.audience values
	// is among these 1-1000 non-empty values. nil: every subscriber of the
	// stream (the column is NULL).
	Audience []string
}

// ID is an event's id: the id column of its row in streamer.events.
type ID int64

var (
	// ErrFull: the queue is at its bound; nothing was accepted. Retry
	// later, or slow down.
	ErrFull = batch.ErrFull
	// ErrClosed: the Publisher is closed (or closing), or Close cut the
	// events off before they were sent; they were not published.
	ErrClosed = batch.ErrClosed
	// ErrTooLarge: the events exceed the queue's bound on their own.
	ErrTooLarge = batch.ErrTooLarge
	// ErrOutcomeUnknown: the caller stopped waiting while the events were
	// being committed; they may have been published.
	ErrOutcomeUnknown = batch.ErrOutcomeUnknown
	// ErrReadOnly: the database refuses writes (a standby after a
	// failover); nothing was published. Retry later.
	ErrReadOnly = batch.ErrReadOnly
)

// RuleError is an event that breaks one of streamer.events' rules.
type RuleError struct {
	Index   int    // the event's position among those submitted together; -1 if unknown
	Field   string // "stream", "event" or "data"
	Rule    string // the rule's name, that of the table's CHECK constraint, e.g. "stream_name_rule"
	Message string // what the rule requires
	Err     error  // the database's error, when the database refused the row
}

func (e *RuleError) Error() string { return (*batch.RuleError)(e).Error() }
func (e *RuleError) Unwrap() error { return e.Err }

// UndeliveredError is Close's report of the enqueued events it could not
// deliver before its deadline.
type UndeliveredError struct {
	Failures []Failure
}

func (e *UndeliveredError) Error() string {
	fs := make([]batch.Failure, len(e.Failures))
	for i, f := range e.Failures {
		fs[i] = batch.Failure{Events: []batch.Event{batch.Event(f.Event)}, Err: f.Err}
	}
	return (&batch.UndeliveredError{Failures: fs}).Error()
}

// Failure is an event that was not published, and why: Err wraps ErrClosed
// (not published), ErrOutcomeUnknown, a *RuleError or a database error.
type Failure struct {
	Event Event
	Err   error
}

// Config configures a Publisher. Zero values take the defaults.
type Config struct {
	// A batch commits when it holds MaxBatchEvents events (default 500)
	// or MaxBatchBytes bytes (default 1 MiB), when its oldest event has
	// waited MaxDelay (default 2ms; negative: no wait, send as soon as a
	// batch slot is free: two batches may be under way, committing in
	// order), or on Flush. MaxDelay is an upper bound: as soon as the
	// Publish callers the last batches answered are queued again, the
	// batch is sent.
	MaxBatchEvents int
	MaxBatchBytes  int
	MaxDelay       time.Duration

	// The queue's bound (defaults 100,000 events, 64 MiB); beyond it
	// Enqueue and Publish fail at once with ErrFull.
	QueueEvents int
	QueueBytes  int

	// Transient failures are retried after MinBackoff·2^n (default 10ms),
	// capped at MaxBackoff (default 1s), with jitter.
	MinBackoff time.Duration
	MaxBackoff time.Duration

	// OnError is told about each enqueued event that failed while the
	// Publisher ran (a broken rule found by the database, a permanent
	// database error). It runs on the Publisher's goroutine and must
	// return quickly. nil logs the failures with log/slog. Events that
	// Close cuts off are reported by Close.
	OnError func(Failure)
}

// Publisher publishes events in batches: concurrent callers share
// transactions (group commit). It is safe for concurrent use.
type Publisher struct {
	b *batch.Batcher
}

// New starts a Publisher that commits on pool. It fails if the database
// does not answer within ctx; ctx bounds only that check, and the Publisher
// runs until Close. Close it when done.
func New(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Publisher, error) {
	onError := cfg.OnError
	if onError == nil {
		onError = func(f Failure) {
			slog.Error("streamer publisher: event not published", "stream", f.Event.Stream, "error", f.Err)
		}
	}
	b := batch.New(batch.Config{
		Pool:           pool,
		MaxBatchEvents: cfg.MaxBatchEvents,
		MaxBatchBytes:  cfg.MaxBatchBytes,
		MaxDelay:       cfg.MaxDelay,
		QueueEvents:    cfg.QueueEvents,
		QueueBytes:     cfg.QueueBytes,
		MinBackoff:     cfg.MinBackoff,
		MaxBackoff:     cfg.MaxBackoff,
		OnError: func(f batch.Failure) {
			for _, e := range f.Events {
				onError(Failure{Event: Event(e), Err: convert(f.Err)})
			}
		},
		Logger: zerolog.Nop(),
	})
	if err := pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("streamer publisher: connect: %w", err)
	}
	// The batcher stops when its Start context ends; the Publisher must
	// outlive New's.
	if err := b.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	return &Publisher{b: b}, nil
}

// Publish publishes e and waits until it has committed, returning its id.
// It returns ErrFull at once when the queue is full. When ctx ends first,
// Publish returns at once: with ctx's error alone if the event had not been
// sent (it never will be), or wrapped with ErrOutcomeUnknown if it was being
// committed. Transient database failures are retried until ctx ends.
func (p *Publisher) Publish(ctx context.Context, e Event) (ID, error) {
	ids, err := p.b.Publish(ctx, []batch.Event{batch.Event(e)})
	if err != nil {
		return 0, convert(err)
	}
	return ID(ids[0]), nil
}

// PublishAll publishes events atomically, in one transaction (shared with
// other callers' events), and returns their ids in order. One event that
// breaks a rule fails them all with a *RuleError whose Index names it.
func (p *Publisher) PublishAll(ctx context.Context, events ...Event) ([]ID, error) {
	ids, err := p.b.Publish(ctx, toBatch(events))
	if err != nil {
		return nil, convert(err)
	}
	return toIDs(ids), nil
}

// Enqueue queues e and returns at once: nil once it is queued, ErrFull when
// the queue is full, a *RuleError when e breaks a rule, ErrClosed after
// Close. Later failures go to Config.OnError. Events enqueued by one
// goroutine are committed in the order it enqueued them.
func (p *Publisher) Enqueue(e Event) error {
	return convert(p.b.Enqueue([]batch.Event{batch.Event(e)}))
}

// Flush sends whatever is queued now, without waiting for batches to fill,
// and waits until every event enqueued before the call has committed or
// failed, or until ctx ends.
func (p *Publisher) Flush(ctx context.Context) error {
	return p.b.Flush(ctx)
}

// Close stops intake (Publish and Enqueue return ErrClosed from now on),
// sends everything queued, and waits for it until ctx ends. Events still
// undelivered then are abandoned: Publish callers get ErrClosed or
// ErrOutcomeUnknown, and Close returns an *UndeliveredError listing the
// enqueued ones. Safe to call more than once.
func (p *Publisher) Close(ctx context.Context) error {
	return convert(p.b.Close(ctx))
}

// PublishTx publishes events inside the caller's transaction with one
// INSERT statement (one NOTIFY), returning their ids in order. They become
// visible to subscribers only if tx commits, and never if it rolls back:
// the transactional outbox. A broken rule is a *RuleError; if the database
// found it, tx is aborted, as after any failed statement.
func PublishTx(ctx context.Context, tx pgx.Tx, events ...Event) ([]ID, error) {
	ids, err := batch.Insert(ctx, tx, toBatch(events))
	if err != nil {
		return nil, convert(err)
	}
	return toIDs(ids), nil
}

func toBatch(events []Event) []batch.Event {
	out := make([]batch.Event, len(events))
	for i, e := range events {
		out[i] = batch.Event(e)
	}
	return out
}

func toIDs(ids []int64) []ID {
	out := make([]ID, len(ids))
	for i, id := range ids {
		out[i] = ID(id)
	}
	return out
}

// convert turns the batcher's error types into this package's.
func convert(err error) error {
	var re *batch.RuleError
	if errors.As(err, &re) {
		return (*RuleError)(re)
	}
	var ue *batch.UndeliveredError
	if errors.As(err, &ue) {
		out := &UndeliveredError{}
		for _, f := range ue.Failures {
			for _, e := range f.Events {
				out.Failures = append(out.Failures, Failure{Event: Event(e), Err: f.Err})
			}
		}
		return out
	}
	return err
}
