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
	for _, tc := range []struct {
		name          string
		start, factor float64
		rungs, bisect int
		pass          func(attempt int, rate float64) bool
		tried         []float64
		capacity      float64
		ceiling       bool
	}{{
		// 3797 fails twice; then √(2531·3797) = 3100 fails.
		name: "climbs, confirms the ceiling, bisects once", start: 500, factor: 1.5, rungs: 12, bisect: 1,
		pass:  below(3000),
		tried: []float64{500, 750, 1125, 1688, 2531, 3797, 3797, 3100}, capacity: 2531, ceiling: true,
	}, {
		// √(2531·3100) = 2801 passes.
		name: "a bisection that passes raises the capacity", start: 500, factor: 1.5, rungs: 12, bisect: 2,
		pass:  below(3000),
		tried: []float64{500, 750, 1125, 1688, 2531, 3797, 3797, 3100, 2801}, capacity: 2801, ceiling: true,
	}, {
		name: "one failure is retried and the climb goes on", start: 500, factor: 1.5, rungs: 12,
		pass:  func(attempt int, rate float64) bool { return attempt != 2 && rate < 2000 },
		tried: []float64{500, 750, 1125, 1125, 1688, 2531, 2531}, capacity: 1688, ceiling: true,
	}, {
		name: "every retry is of the rate that failed", start: 100, factor: 2, rungs: 4,
		pass:  func(attempt int, _ float64) bool { return attempt%2 == 1 }, // fails, then passes the retry
		tried: []float64{100, 100, 200, 200, 400, 400, 800, 800}, capacity: 800,
	}, {
		name: "no ceiling within the rungs", start: 500, factor: 1.5, rungs: 4, bisect: 1,
		pass:  below(1e9),
		tried: []float64{500, 750, 1125, 1688}, capacity: 1688,
	}, {
		name: "the first rate fails twice", start: 500, factor: 1.5, rungs: 12, bisect: 1,
		pass:  below(100),
		tried: []float64{500, 500}, ceiling: true,
	}, {
		name: "no whole rate left to bisect", start: 10, factor: 1.1, rungs: 12, bisect: 3,
		pass:  below(11), // 10 passes, 11 fails twice
		tried: []float64{10, 11, 11}, capacity: 10, ceiling: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newLadder(tc.start, tc.factor, tc.rungs, tc.bisect)
			assert.Equal(t, tc.tried, climb(l, tc.pass))
			capacity, ceiling := l.capacity()
			assert.Equal(t, tc.capacity, capacity)
			assert.Equal(t, tc.ceiling, ceiling)
		})
	}
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
