package hist

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSince(t *testing.T) {
	t.Parallel()
	var h Histogram
	for range 1000 {
		h.Record(time.Millisecond)
	}
	var before Latencies
	before.Add(h.Snapshot())
	for range 100 {
		h.Record(time.Second)
		h.Record(time.Millisecond)
	}
	var after Latencies
	after.Add(h.Snapshot())

	window := after.Since(&before) // 100 of 1 ms, 100 of 1 s
	assert.InDelta(t, float64(time.Millisecond), float64(window.Quantile(0.25)), float64(time.Millisecond)/50)
	assert.InDelta(t, float64(time.Second), float64(window.Quantile(0.75)), float64(time.Second)/50,
		"the window holds only the later samples")
	assert.InDelta(t, float64(time.Millisecond), float64(after.Quantile(0.5)), float64(time.Millisecond)/50,
		"the whole run is mostly the earlier ones")

	empty := after.Since(&after)
	assert.Zero(t, empty.Quantile(0.99), "nothing recorded between")

	var none Latencies
	all := after.Since(&none)
	assert.Equal(t, after.Quantile(0.99), all.Quantile(0.99), "since nothing: everything")
}
