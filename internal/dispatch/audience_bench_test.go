package dispatch

import (
	"fmt"
	"testing"
	"time"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/registry"
)

// BenchmarkFanoutAudience is the dispatcher's live fan-out of events on a
// stream with 100 subscribers: "anonymous" with no audiences anywhere (the
// unauthenticated figure), "authenticated" with every subscriber holding
// keys (its sub and two team values) and every second event restricted to
// one user and one team, each subscriber seeing about half of those. ns per
// delivery (ns/op divided by deliveries/op) is the figure to compare:
// docs/benchmarks.md. Events come 50 to a loop turn, as in a live read
// under load; the id-only frames of subscribers whose last event in the
// turn was hidden are part of the cost.
func BenchmarkFanoutAudience(b *testing.B) {
	for _, authenticated := range []bool{false, true} {
		name := "anonymous"
		if authenticated {
			name = "authenticated"
		}
		b.Run(name, func(b *testing.B) {
			reg := registry.New[Subscriber]()
			d := New(Config{Registry: reg})
			d.states = make(map[Subscriber]*subState)
			d.replaying = make(map[string]map[*subState]struct{})
			for i := range 100 {
				s := &discardSub{done: make(chan struct{})}
				var keys []string
				if authenticated {
					keys = []string{fmt.Sprint("user:", i), fmt.Sprint("team:", i%2), "org:1"}
				}
				d.states[s] = &subState{sub: s, aud: newAudience(keys)}
				reg.Add(s, []string{"s"})
			}
			committed := time.Now()
			restricted := []string{"user:3", "team:1"}
			delivered := 0
			const pageEvents = 50 // events per live read under load
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				ev := event{pos: cursor.Position{Seq: int64(i + 1), ID: 1}, stream: "s", data: "x", committed: committed}
				if authenticated && i%2 == 0 {
					ev.audience = restricted
				}
				d.fanout(&ev)
				if i%pageEvents == pageEvents-1 { // the end of a loop turn
					delivered += d.queued
					d.flushSkipped()
					d.flushDelivered()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(delivered, 1)), "ns/delivery")
		})
	}
}
