package retention

import (
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/streamer-dev/streamer/internal/defaults"
)

// Defaults applied by [New] to zero fields of [Config].
const (
	// MaxInterval caps the default interval between passes: the contract
	// prunes at least every min(retention/2, 1m).
	MaxInterval = time.Minute
	// DefaultStepBudget is the time one step aims to take: short bursts,
	// cheap enough that the per-step overhead stays small.
	DefaultStepBudget = 50 * time.Millisecond
	// DefaultMaxStepCommits caps the commits one step prunes.
	DefaultMaxStepCommits = 5000
	// DefaultRest is the pause after a step, as a multiple of its duration:
	// with 3, a backlog takes at most a quarter of one core (measured in
	// docs/retention.md against live delivery p99).
	DefaultRest = 3.0
	// DefaultSilenceTimeout: see Config.SilenceTimeout.
	DefaultSilenceTimeout = 10 * time.Second
	// firstStepCommits is where the step size starts at every pass.
	firstStepCommits = 500
)

// Config configures a [Service]. Zero fields take the defaults above.
type Config struct {
	// Pool is the database. Required unless Retention is 0.
	Pool *pgxpool.Pool

	// Retention: events committed longer ago are pruned. 0 turns the
	// service off (Start runs nothing); negative is treated as 0.
	Retention time.Duration

	// Interval between passes; default min(Retention/2, MaxInterval).
	// Larger values are lowered to that bound.
	Interval time.Duration

	// StepBudget is the time one step (one transaction) aims to take; the
	// step size adapts to it. A step is cancelled by the server
	// (statement_timeout) after 4×StepBudget, and retried smaller. Default
	// DefaultStepBudget.
	StepBudget time.Duration

	// MaxStepCommits caps the commits one step prunes; default
	// DefaultMaxStepCommits.
	MaxStepCommits int

	// Rest is the pause after each step, as a multiple of the step's
	// duration, so that a large backlog is worked off without taking a
	// whole core from publishers and the live path: 1 means pruning runs
	// at most half of the time, the default 3 a quarter. Negative means no
	// pause. Default (0) DefaultRest.
	Rest float64

	// SilenceTimeout is how long PostgreSQL keeps a pass's session once it
	// hears nothing more on it (package silence), and, added to a step's
	// statement_timeout, how long the service waits for an answer. Without
	// it a server that froze or was cut off mid-pass (no FIN or RST) kept
	// the service lock, and so stopped every server's pruning, until TCP
	// keepalive ended its session: two hours by default. Default 10s, and
	// at least five times the longest pause between a pass's statements
	// (Rest times a step's statement_timeout).
	SilenceTimeout time.Duration

	// Logger receives one line per pass that pruned something, and errors.
	Logger zerolog.Logger

	// OnPruned, when non-nil, is called after every step that removed
	// events, with their number (for example a Prometheus counter's Add).
	OnPruned func(events int64)

	// TestSignals, when non-nil and initialised, receives test signals. Nil
	// in production.
	TestSignals *TestSignals

	// onStep, when non-nil, is called after every step with when it began,
	// how long it took, its size and what it removed (benchmarks).
	onStep func(began time.Time, took time.Duration, size int, events int64)
}

func (c Config) withDefaults() Config {
	if c.Retention < 0 {
		c.Retention = 0
	}
	bound := min(c.Retention/2, MaxInterval)
	if c.Interval <= 0 || c.Interval > bound {
		c.Interval = bound
	}
	defaults.Positive(&c.Interval, time.Millisecond)
	defaults.Positive(&c.StepBudget, DefaultStepBudget)
	defaults.Positive(&c.MaxStepCommits, DefaultMaxStepCommits)
	defaults.ZeroOrOff(&c.Rest, DefaultRest)
	defaults.Positive(&c.SilenceTimeout, DefaultSilenceTimeout)
	c.SilenceTimeout = max(c.SilenceTimeout, time.Duration(5*max(c.Rest, 0)*float64(c.stepTimeout())))
	return c
}

// stepTimeout is the statement_timeout of a step.
func (c Config) stepTimeout() time.Duration { return 4 * c.StepBudget }
