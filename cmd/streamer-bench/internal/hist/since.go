package hist

// Since returns what l holds beyond earlier, a merge of the same histograms
// taken before (every count of earlier is at most l's): the latencies
// recorded between the two, for quantiles over a window of a run that is
// never reset. Its maximum is l's, which bounds the window's; its minimum
// is unknown and left 0.
func (l *Latencies) Since(earlier *Latencies) Latencies {
	d := Latencies{counts: make(map[int]uint64, len(l.counts)), max: l.max}
	for i, n := range l.counts {
		if n > earlier.counts[i] {
			d.counts[i] = n - earlier.counts[i]
			d.total += d.counts[i]
		}
	}
	return d
}
