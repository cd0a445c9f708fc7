package listener

import (
	"math/rand/v2"
	"time"
)

// backoff returns how long to wait before reconnect attempt number attempt
// (0 for the first): min·2^attempt capped at max, then "equal jitter", a
// uniformly random duration in [d/2, d], so that many listeners that lost the
// same server do not reconnect in lockstep and none waits less than half the
// step.
func backoff(attempt int, minBackoff, maxBackoff time.Duration) time.Duration {
	d := minBackoff
	for i := 0; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	half := d / 2
	return half + rand.N(d-half+1)
}
