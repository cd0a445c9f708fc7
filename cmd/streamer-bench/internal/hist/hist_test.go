package hist

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestHistogram(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	var l Latencies
	l.Add(h.Snapshot())
	for _, q := range []float64{0.5, 0.99} {
		want := time.Duration(q*1000) * time.Microsecond
		got := l.Quantile(q)
		assert.InDelta(t, float64(want), float64(got), float64(want)/50, "quantile %v", q)
	}
	assert.Equal(t, time.Millisecond, l.Quantile(1))
	for v := uint64(0); v < 1<<20; v += 997 {
		i := bucketOf(v)
		assert.LessOrEqual(t, v, uint64(bucketUpper(i)))
		if i > 0 {
			assert.Greater(t, v, uint64(bucketUpper(i-1)))
		}
	}
}
