// Package hist records latencies in a log-linear histogram that many
// goroutines may record into at once, and merges the snapshots of several
// processes for quantiles.
//
// # Invariants
//
//   - Every recorded value v falls in a bucket whose upper bound is at most
//     1/64 above v, so a quantile is at most 1.6% above the true value.
//   - A Snapshot holds only the non-empty buckets; merging snapshots in any
//     order gives the same Latencies.
package hist

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histBits is the number of sub-buckets per power of two, as a power of two:
// 64 sub-buckets give every recorded value within 1/64 (1.6%) of its bucket.
const histBits = 6

// histBuckets covers every non-negative int64.
const histBuckets = (64 - histBits) << histBits

// Histogram is a log-linear histogram of durations in nanoseconds (the
// layout of HdrHistogram with 64 sub-buckets), safe for concurrent Record.
// Its exact maximum is kept on the side.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	max    atomic.Int64
	min    atomic.Int64 // 0: no sample yet (a sample of 0 is stored as 1)
}

// bucketOf is the bucket that holds v.
func bucketOf(v uint64) int {
	if v < 1<<histBits {
		return int(v)
	}
	e := bits.Len64(v) - histBits - 1
	return (e+1)<<histBits + int(v>>e) - 1<<histBits
}

// bucketUpper is the largest value that falls in bucket i.
func bucketUpper(i int) int64 {
	if i < 1<<histBits {
		return int64(i)
	}
	e := i>>histBits - 1
	m := int64(i&(1<<histBits-1) + 1<<histBits)
	return (m+1)<<e - 1
}

// Record adds one sample; a negative one counts as 0.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(uint64(v))].Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for lo := max(v, 1); ; {
		m := h.min.Load()
		if (m != 0 && m <= lo) || h.min.CompareAndSwap(m, lo) {
			return
		}
	}
}

// Reset empties the histogram. Samples recorded during Reset may or may
// not survive it.
func (h *Histogram) Reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.max.Store(0)
	h.min.Store(0)
}

// Snapshot is a histogram's contents, sparse, for the wire and for
// merging: Buckets holds [index, count] pairs.
type Snapshot struct {
	Buckets [][2]uint64 `json:"buckets,omitempty"`
	Max     int64       `json:"max"`
	Min     int64       `json:"min"`
}

// Snapshot returns the histogram's contents.
func (h *Histogram) Snapshot() Snapshot {
	var s Snapshot
	for i := range h.counts {
		if n := h.counts[i].Load(); n > 0 {
			s.Buckets = append(s.Buckets, [2]uint64{uint64(i), n})
		}
	}
	s.Max, s.Min = h.max.Load(), h.min.Load()
	return s
}

// Latencies is a merged histogram, for quantiles.
type Latencies struct {
	counts map[int]uint64
	total  uint64
	max    int64
	min    int64
}

// Add merges s into l.
func (l *Latencies) Add(s Snapshot) {
	if l.counts == nil {
		l.counts = map[int]uint64{}
	}
	for _, b := range s.Buckets {
		l.counts[int(b[0])] += b[1]
		l.total += b[1]
	}
	l.max = max(l.max, s.Max)
	if s.Min > 0 && (l.min == 0 || s.Min < l.min) {
		l.min = s.Min
	}
}

// Quantile returns the upper bound of the bucket holding quantile q (within
// 1.6% above the true value), or 0 with no samples.
func (l *Latencies) Quantile(q float64) time.Duration {
	if l.total == 0 {
		return 0
	}
	rank := uint64(q*float64(l.total) + 0.5)
	rank = min(max(rank, 1), l.total)
	var seen uint64
	for i := 0; i < histBuckets; i++ {
		seen += l.counts[i]
		if seen >= rank {
			return time.Duration(min(bucketUpper(i), l.max))
		}
	}
	return time.Duration(l.max)
}

// Max is the largest sample merged, exactly.
func (l *Latencies) Max() time.Duration { return time.Duration(l.max) }

// Min is the smallest sample merged, exactly (a sample of 0 counts as 1 ns);
// 0 with no samples.
func (l *Latencies) Min() time.Duration { return time.Duration(l.min) }
