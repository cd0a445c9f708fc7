package dispatch

import (
	"fmt"
	"testing"
	"time"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/registry"
)

// BenchmarkFanoutAudience is the dispatcher's live fan-out of events on a
// stream with 100 subscribers that discard every frame: "anonymous" with no
// audiences anywhere (the unauthenticated figure), "authenticated" with
// every subscriber holding keys (its sub and two team values) and every
// second event restricted to one user and one team, half the subscribers
// seeing those. CPU ns per delivery is the figure to compare (ns/delivery
// is wall time, which a loaded machine inflates): docs/benchmarks.md. Events come 50 to a loop turn, as
// in a live read under load, each turn ending with a restricted event; the
// id-only frames go out once a second, as IDFrameDelay would send them.
func BenchmarkFanoutAudience(b *testing.B) {
	for _, authenticated := range []bool{false, true} {
		name := "anonymous"
		if authenticated {
			name = "authenticated"
		}
		b.Run(name, func(b *testing.B) {
			reg := registry.New[Subscriber]()
			d := benchDispatcher(Config{Registry: reg})
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
			delivered, lastIDs := 0, time.Now()
			const pageEvents = 50 // events per live read under load
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for i := range b.N {
				ev := event{pos: cursor.Position{Seq: int64(i + 1), ID: 1}, stream: "s", data: "x", committed: committed}
				if authenticated && i%2 == 1 {
					ev.audience = restricted
				}
				d.fanout(&ev)
				if i%pageEvents == pageEvents-1 { // the end of a loop turn
					delivered += d.queued
					if len(d.skipped) > 0 && time.Since(lastIDs) >= time.Second {
						d.flushSkipped()
						lastIDs = time.Now()
					}
					d.endTurn()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(delivered, 1)), "ns/delivery")
			b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(max(delivered, 1)), "cpu-ns/delivery")
		})
	}
}
