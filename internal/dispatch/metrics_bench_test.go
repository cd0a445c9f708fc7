package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/metrics"
	"github.com/streamer-dev/streamer/internal/registry"
)

// discardSub accepts every frame and drops it.
type discardSub struct{ done chan struct{} }

func (discardSub) Enqueue([]byte) bool                       { return true }
func (discardSub) EnqueueHeld([]byte, time.Time) bool        { return true }
func (discardSub) Release()                                  {}
func (discardSub) EnqueueWait(context.Context, []byte) error { return nil }
func (discardSub) Close(error)                               {}
func (s discardSub) Done() <-chan struct{}                   { return s.done }

// benchDispatcher returns a dispatcher that is not running but has the
// state of a run, for benchmarks that call fanout directly.
func benchDispatcher(cfg Config) *Dispatcher {
	d := New(cfg)
	d.states = make(map[Subscriber]*subState)
	d.live = make(map[string]*liveStates)
	d.replaying = make(map[string]map[*subState]struct{})
	return d
}

// BenchmarkFanoutMetrics is the dispatcher's per-event work for one live
// read of events on a stream with 100 subscribers, without metrics and
// with the Prometheus ones: the difference is what metrics cost per event
// (a plain increment per delivery, one counter add
// per loop turn).
func BenchmarkFanoutMetrics(b *testing.B) {
	for _, bc := range []struct {
		name string
		m    Metrics
	}{
		{"none", nil},
		{"prometheus", metrics.New(metrics.Sources{})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			reg := registry.New[Subscriber]()
			d := benchDispatcher(Config{Registry: reg, Metrics: bc.m})
			for range 100 {
				s := &discardSub{done: make(chan struct{})}
				d.states[s] = &subState{sub: s}
				reg.Add(s, []string{"s"})
			}
			committed := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				ev := event{pos: cursor.Position{Seq: int64(i + 1), ID: 1}, stream: "s", data: "x", committed: committed}
				d.fanout(&ev)
				d.endTurn()
			}
		})
	}
}
