package batch

// Metrics receives the batcher's counts; *metrics.Metrics implements it.
// Config.Metrics nil counts nothing. Its methods are called from the
// goroutines that commit batches and must not block.
type Metrics interface {
	// Published counts one committed transaction of n events.
	Published(n int)
}

type noMetrics struct{}

func (noMetrics) Published(int) {}
