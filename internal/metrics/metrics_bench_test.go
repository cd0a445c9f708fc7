package metrics_test

import (
	"testing"
	"time"

	"github.com/streamer-dev/streamer/internal/metrics"
)

// BenchmarkDeliveryPath is what one event of a live read costs in metrics:
// a lag observation and a delivered-count add (the dispatcher adds once
// per loop turn, so this overstates a read of many events).
func BenchmarkDeliveryPath(b *testing.B) {
	m := metrics.New(metrics.Sources{})
	committed := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.DeliveryLag(time.Since(committed))
			m.Delivered(100)
		}
	})
}
