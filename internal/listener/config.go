package listener

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/streamer-dev/streamer/internal/defaults"
)

// Defaults applied by [New] to zero fields of [Config].
const (
	DefaultChannel      = "streamer"
	DefaultPingInterval = 5 * time.Second
	DefaultMinBackoff   = 100 * time.Millisecond
	DefaultMaxBackoff   = 10 * time.Second
)

// ApplicationName is set as the listener connection's application_name
// (unless the DSN sets one), so it can be found in pg_stat_activity.
const ApplicationName = "streamer-listener"

// Config configures a [Listener]. Zero fields take the defaults above.
type Config struct {
	// DatabaseURL is a libpq-style connection string or URL.
	DatabaseURL string

	// Channel is the notification channel to LISTEN on; default "streamer".
	Channel string

	// PingInterval is how long the listener waits for a notification before
	// pinging the connection to detect a dead one; default 5s.
	PingInterval time.Duration

	// MinBackoff and MaxBackoff bound the reconnect backoff: capped
	// exponential with jitter, reset after a successful reconnect; defaults
	// 100ms and 10s. A MaxBackoff below MinBackoff is raised to MinBackoff.
	MinBackoff, MaxBackoff time.Duration

	// Logger receives connect, lost-connection and reconnect events. The zero
	// Logger discards everything.
	Logger zerolog.Logger

	// Waker is told to wake after notifications and after every LISTEN.
	// Required.
	Waker Waker

	// Metrics receives reconnect counts; nil counts nothing.
	Metrics Metrics

	// TestSignals, when non-nil and initialised, receives test signals. Nil
	// in production.
	TestSignals *TestSignals
}

func (c Config) withDefaults() Config {
	if c.Channel == "" {
		c.Channel = DefaultChannel
	}
	defaults.Positive(&c.PingInterval, DefaultPingInterval)
	defaults.Positive(&c.MinBackoff, DefaultMinBackoff)
	defaults.Positive(&c.MaxBackoff, DefaultMaxBackoff)
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.Metrics == nil {
		c.Metrics = noMetrics{}
	}
	return c
}
