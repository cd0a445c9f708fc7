package main

import (
	"fmt"
	"math"
	"time"
)

// ladder is the capacity scenario's search: which publishing rate to try
// next, given the verdicts so far. It only decides; the scenario runs the
// steps and reports each verdict with record.
//
// It climbs start, start·factor, start·factor², … (rounded to whole events
// per second) while steps pass. A rate that fails is tried once more, so
// that one busy moment of the shared machine does not end the climb; failing
// twice, it is the ceiling. Then it bisects (at the geometric mean, rounded)
// between the highest rate that passed and the lowest that failed, bisect
// times, each rate tried once. The rates tried are therefore a fixed set: two
// runs that see the same verdicts try the same rates, and the capacity is
// known to within a factor of factor^(1/2^bisect). After rungs climbing rates
// without a ceiling it stops: the capacity is then at least the last one.
type ladder struct {
	start, factor float64
	rungs, bisect int

	rung     int     // climbing: the rung being tried, from 0
	retried  bool    // the rung has failed once already
	pass     float64 // the highest rate that passed; 0: none yet
	fail     float64 // the lowest rate that failed for good; 0: none yet (climbing)
	bisected int
	cur      float64 // handed out by next, awaiting its verdict
	stopped  bool
}

func newLadder(start, factor float64, rungs, bisect int) *ladder {
	return &ladder{start: start, factor: factor, rungs: rungs, bisect: bisect}
}

// rate returns the rate of rung i.
func (l *ladder) rate(i int) float64 {
	return math.Round(l.start * math.Pow(l.factor, float64(i)))
}

// next returns the rate of the next step, or false when the search is over.
func (l *ladder) next() (float64, bool) {
	switch {
	case l.stopped:
		return 0, false
	case l.fail == 0: // climbing
		if l.rung >= l.rungs {
			return 0, false
		}
		l.cur = l.rate(l.rung)
	default:
		if l.bisected >= l.bisect || l.pass == 0 {
			return 0, false
		}
		mid := math.Round(math.Sqrt(l.pass * l.fail))
		if mid <= l.pass || mid >= l.fail {
			return 0, false // no whole rate left between them
		}
		l.cur = mid
	}
	return l.cur, true
}

// record takes the verdict on the rate next returned.
func (l *ladder) record(pass bool) {
	switch {
	case l.fail != 0: // bisecting
		l.bisected++
		if pass {
			l.pass = l.cur
		} else {
			l.fail = l.cur
		}
	case pass:
		l.pass = l.cur
		l.rung++
		l.retried = false
	case !l.retried:
		l.retried = true
	default:
		l.fail = l.cur
	}
}

// stop ends the search: the system under test can no longer be measured.
func (l *ladder) stop() { l.stopped = true }

// capacity returns the highest rate that passed (0: none) and whether a
// rate above it failed; when none did, the capacity is at least that.
func (l *ladder) capacity() (rate float64, ceiling bool) { return l.pass, l.fail != 0 }

// stepOutcome is what one step of the capacity search measured.
type stepOutcome struct {
	// Complete: every connection had every event published so far within
	// the drain time after the step.
	Complete bool
	// Faults: failed or dropped connections, duplicates, events out of
	// order or of another stream, gaps, publish errors, since the
	// connections opened.
	Faults int64
	// WindowP99s: publish-to-receive p99 of each window of the step (the
	// last one with the drain).
	WindowP99s []time.Duration
}

// judge returns whether a step passes under the latency limit, and why not.
// It passes with no fault, every event delivered, and p99 under the limit
// in more than half of its windows: an overloaded server's queue holds
// every later window over the limit, while a stall of the shared machine
// (100-300 ms when the load average is 20) spoils one or two.
func judge(o stepOutcome, limit time.Duration) (bool, string) {
	over := 0
	for _, p := range o.WindowP99s {
		if p >= limit {
			over++
		}
	}
	switch {
	case o.Faults > 0:
		return false, fmt.Sprintf("%d faults", o.Faults)
	case !o.Complete:
		return false, "not every event delivered within the drain time"
	case len(o.WindowP99s) == 0:
		return false, "no window"
	case 2*over >= len(o.WindowP99s):
		return false, fmt.Sprintf("p99 ≥ %v in %d of %d windows", limit, over, len(o.WindowP99s))
	default:
		return true, ""
	}
}
