package batch

import (
	"math/rand/v2"
	"time"
)

// backoff returns the wait before retry number attempt (0 for the first):
// minBackoff·2^attempt capped at maxBackoff, then "equal jitter", uniformly
// random in [d/2, d], so that publishers that lost the same server do not
// retry in lockstep.
func backoff(attempt int, minBackoff, maxBackoff time.Duration) time.Duration {
	d := minBackoff
	for i := 0; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	half := d / 2
	return half + rand.N(d-half+1)
}
