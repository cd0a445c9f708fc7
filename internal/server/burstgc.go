package server

import (
	"context"
	"runtime"
	"time"

	"github.com/streamer-dev/streamer/internal/defaults"
)

// Defaults of the collection after a burst of connections (Config.Burst*).
const (
	DefaultBurstConnections = 1000
	DefaultBurstTick        = time.Second
)

// collectAfterBursts runs Config.BurstCollect (a garbage collection) once
// BurstConnections or more streams were taken over since the last one and
// the arrivals have slowed to under a tenth of that per BurstTick: the end
// of a reconnect storm. Until ctx ends; done is closed when it returns.
//
// Why: taking a connection over leaves net/http's per-connection set-up as
// garbage (its 4 KiB bufio.Reader, the 4 KiB bufio.Writer Hijack itself
// allocates, the response's buffer, the request, and the handler
// goroutine's stack, grown by routing and authorization). An idle server
// collects only every two minutes, so after a storm that garbage, 10 KiB
// and more per connection, is what RSS holds; collecting once the storm is
// over lets the runtime reuse it and return it to the OS.
func (s *Server) collectAfterBursts(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	if s.cfg.BurstConnections < 0 {
		return
	}
	tick := time.NewTicker(s.cfg.BurstTick)
	defer tick.Stop()
	var atCollect, atTick int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n := s.hijacks.Load()
		recent := n - atTick
		atTick = n
		if n-atCollect >= int64(s.cfg.BurstConnections) && recent < int64(max(s.cfg.BurstConnections/10, 1)) {
			s.cfg.BurstCollect()
			atCollect = n
		}
	}
}

func (c *Config) setBurstDefaults() {
	if c.BurstConnections == 0 {
		c.BurstConnections = DefaultBurstConnections
	}
	defaults.Positive(&c.BurstTick, DefaultBurstTick)
	if c.BurstCollect == nil {
		c.BurstCollect = runtime.GC
	}
}
