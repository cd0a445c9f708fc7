// Package backoff computes retry delays (capped exponential backoff with
// jitter) and waits them out (Sleep, which ends early with its context),
// shared by the listener's reconnects, the batcher's retries and the load
// tool's waits.
//
// # Invariants
//
//   - Delay(n, lo, hi) is in [d/2, d] where d = min(lo·2^n, hi).
//   - Delays never exceed hi and never shrink as n grows, apart from jitter.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay returns the wait before attempt number attempt (0 for the first):
// minDelay·2^attempt capped at maxDelay, then "equal jitter", uniformly
// random in [d/2, d], so that many clients that lost the same server do not
// retry in lockstep and none waits less than half the step.
func Delay(attempt int, minDelay, maxDelay time.Duration) time.Duration {
	d := minDelay
	for i := 0; i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	half := d / 2
	return half + rand.N(d-half+1)
}

// Sleep waits d and reports true, or reports false as soon as ctx ends.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
