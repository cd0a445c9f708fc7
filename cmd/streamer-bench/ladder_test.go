package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// climb runs l to its end with verdicts from pass, and returns the rates tried.
func climb(l *ladder, pass func(attempt int, rate float64) bool) []float64 {
	var tried []float64
	for attempt := 0; attempt < 100; attempt++ {
		rate, ok := l.next()
		if !ok {
			return tried
		}
		tried = append(tried, rate)
		l.record(pass(attempt, rate))
	}
	panic("the ladder never ended")
}

func below(limit float64) func(int, float64) bool {
	return func(_ int, rate float64) bool { return rate < limit }
}

func TestLadder(t *testing.T) {
	t.Parallel()
	t.Run("climbs, confirms the ceiling, bisects once", func(t *testing.T) {
		t.Parallel()
		l := newLadder(500, 1.5, 12, 1)
		tried := climb(l, below(3000))
		// 3797 fails twice; then √(2531·3797) = 3100 fails.
		assert.Equal(t, []float64{500, 750, 1125, 1688, 2531, 3797, 3797, 3100}, tried)
		capacity, ceiling := l.capacity()
		assert.Equal(t, 2531.0, capacity)
		assert.True(t, ceiling)
	})
	t.Run("a bisection that passes raises the capacity", func(t *testing.T) {
		t.Parallel()
		l := newLadder(500, 1.5, 12, 2)
		tried := climb(l, below(3000))
		// √(2531·3100) = 2801 passes.
		assert.Equal(t, []float64{500, 750, 1125, 1688, 2531, 3797, 3797, 3100, 2801}, tried)
		capacity, ceiling := l.capacity()
		assert.Equal(t, 2801.0, capacity)
		assert.True(t, ceiling)
	})
	t.Run("one failure is retried and the climb goes on", func(t *testing.T) {
		t.Parallel()
		l := newLadder(500, 1.5, 12, 0)
		noisy := func(attempt int, rate float64) bool { return attempt != 2 && rate < 2000 }
		tried := climb(l, noisy)
		assert.Equal(t, []float64{500, 750, 1125, 1125, 1688, 2531, 2531}, tried)
		capacity, ceiling := l.capacity()
		assert.Equal(t, 1688.0, capacity)
		assert.True(t, ceiling)
	})
	t.Run("every retry is of the rate that failed", func(t *testing.T) {
		t.Parallel()
		l := newLadder(100, 2, 12, 0)
		flaky := func(attempt int, _ float64) bool { return attempt%2 == 1 } // fails, then passes the retry
		tried := climb(l, flaky)
		assert.Equal(t, []float64{100, 100, 200, 200, 400, 400, 800, 800, 1600, 1600, 3200, 3200}, tried[:12])
		capacity, ceiling := l.capacity()
		assert.Equal(t, 204800.0, capacity, "every rung passed on its retry")
		assert.False(t, ceiling)
	})
	t.Run("no ceiling within the rungs", func(t *testing.T) {
		t.Parallel()
		l := newLadder(500, 1.5, 4, 1)
		tried := climb(l, below(1e9))
		assert.Equal(t, []float64{500, 750, 1125, 1688}, tried)
		capacity, ceiling := l.capacity()
		assert.Equal(t, 1688.0, capacity)
		assert.False(t, ceiling)
	})
	t.Run("the first rate fails twice", func(t *testing.T) {
		t.Parallel()
		l := newLadder(500, 1.5, 12, 1)
		tried := climb(l, below(100))
		assert.Equal(t, []float64{500, 500}, tried)
		capacity, ceiling := l.capacity()
		assert.Zero(t, capacity)
		assert.True(t, ceiling)
	})
	t.Run("no whole rate left to bisect", func(t *testing.T) {
		t.Parallel()
		l := newLadder(10, 1.1, 12, 3)
		tried := climb(l, below(11)) // 10 passes, 11 fails twice
		assert.Equal(t, []float64{10, 11, 11}, tried)
	})
	t.Run("stop ends the search", func(t *testing.T) {
		t.Parallel()
		l := newLadder(500, 1.5, 12, 1)
		tried := climb(l, func(attempt int, rate float64) bool {
			if attempt == 3 {
				l.stop() // say the backlog never drained
				return false
			}
			return true
		})
		assert.Equal(t, []float64{500, 750, 1125, 1688}, tried)
		capacity, ceiling := l.capacity()
		assert.Equal(t, 1125.0, capacity)
		assert.False(t, ceiling)
	})
}

func TestJudge(t *testing.T) {
	t.Parallel()
	const limit = 100 * time.Millisecond
	windows := func(ms ...int) []time.Duration {
		out := make([]time.Duration, len(ms))
		for i, v := range ms {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	for name, o := range map[string]stepOutcome{
		"every window under":          {Complete: true, WindowP99s: windows(5, 10, 99, 7, 8)},
		"two stalls of five windows":  {Complete: true, WindowP99s: windows(5, 250, 9, 300, 8)},
		"one window, under":           {Complete: true, WindowP99s: windows(99)},
		"three windows over of seven": {Complete: true, WindowP99s: windows(1, 2, 3, 400, 400, 400, 4)},
	} {
		pass, why := judge(o, limit)
		assert.True(t, pass, name)
		assert.Empty(t, why, name)
	}
	for name, o := range map[string]stepOutcome{
		"at the limit":          {Complete: true, WindowP99s: windows(100, 100, 100)},
		"a queue growing":       {Complete: true, WindowP99s: windows(20, 90, 150, 400, 900)},
		"half the windows over": {Complete: true, WindowP99s: windows(5, 5, 200, 200)},
		"one window, over":      {Complete: true, WindowP99s: windows(101)},
		"no window":             {Complete: true},
		"incomplete":            {Complete: false, WindowP99s: windows(1, 1, 1)},
		"a fault":               {Complete: true, Faults: 1, WindowP99s: windows(1, 1, 1)},
	} {
		pass, why := judge(o, limit)
		assert.False(t, pass, name)
		assert.NotEmpty(t, why, name)
	}
}
