package batch

import (
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/streamer-dev/streamer/internal/defaults"
)

// Defaults of Config's zero values.
const (
	DefaultMaxBatchEvents = 500
	DefaultMaxBatchBytes  = 1 << 20
	DefaultMaxDelay       = 2 * time.Millisecond
	DefaultQueueEvents    = 100_000
	DefaultQueueBytes     = 64 << 20
	DefaultMinBackoff     = 10 * time.Millisecond
	DefaultMaxBackoff     = time.Second
	DefaultAttemptTimeout = 10 * time.Second
	DefaultMaxInFlight    = 2
)

// Config configures a Batcher. Zero values take the defaults above.
type Config struct {
	// Pool is where batches commit: one connection per batch under way
	// (MaxInFlight), and briefly one more to learn the outcome of an
	// interrupted COMMIT.
	Pool *pgxpool.Pool

	// A batch is sent when it holds MaxBatchEvents events or MaxBatchBytes
	// bytes, when its oldest event has waited MaxDelay, or on Flush. A
	// negative MaxDelay means no wait: a batch is sent as soon as fewer
	// than MaxInFlight batches are under way. MaxDelay is a bound, not a
	// fixed wait: once as many groups are queued as the last batches had
	// Publish callers (who wait for their batch, and so in a closed loop
	// are the only ones coming), the batch is sent without waiting it
	// out. A group of events larger than a batch's bounds is sent as a
	// batch of its own; groups are never split.
	MaxBatchEvents int
	MaxBatchBytes  int
	MaxDelay       time.Duration

	// MaxInFlight is how many batches may be under way at once (default
	// 2). Their INSERTs overlap, and so do their WAL flushes, but each
	// COMMIT waits until the batch before it is resolved, so batches still
	// commit in queue order.
	MaxInFlight int

	// The queue's bound: beyond it submissions fail at once with ErrFull.
	QueueEvents int
	QueueBytes  int

	// Retries of transient failures wait MinBackoff·2^n, capped at
	// MaxBackoff, with jitter. AttemptTimeout bounds one attempt.
	MinBackoff     time.Duration
	MaxBackoff     time.Duration
	AttemptTimeout time.Duration

	// OnError is told about enqueued events (Enqueue) that failed while
	// the batcher ran: refused by a rule, or a fatal database error. It
	// runs on the batcher's goroutine and must not block; nil logs them.
	// Events that Close cuts off are reported by Close instead.
	OnError func(Failure)

	// Metrics receives a count per committed batch; nil counts nothing.
	Metrics Metrics

	// OnCommit, when set, is called after each transaction that committed,
	// on the goroutine that committed it, before its callers hear of it
	// (streamer serve pokes its sequencer). It must not block.
	OnCommit func()

	Logger      zerolog.Logger
	TestSignals *TestSignals // nil in production
}

func (c Config) withDefaults() Config {
	defaults.Positive(&c.MaxBatchEvents, DefaultMaxBatchEvents)
	defaults.Positive(&c.MaxBatchBytes, DefaultMaxBatchBytes)
	defaults.ZeroOrOff(&c.MaxDelay, DefaultMaxDelay)
	defaults.Positive(&c.MaxInFlight, DefaultMaxInFlight)
	defaults.Positive(&c.QueueEvents, DefaultQueueEvents)
	defaults.Positive(&c.QueueBytes, DefaultQueueBytes)
	defaults.Positive(&c.MinBackoff, DefaultMinBackoff)
	defaults.Positive(&c.MaxBackoff, DefaultMaxBackoff)
	defaults.Positive(&c.AttemptTimeout, DefaultAttemptTimeout)
	if c.Metrics == nil {
		c.Metrics = noMetrics{}
	}
	return c
}
