package listener

// Metrics receives the listener's counts; *metrics.Metrics implements it.
// Config.Metrics nil counts nothing. Its methods are called from the
// listener's goroutine and must not block.
type Metrics interface {
	// ListenerReconnected counts a successful LISTEN after the connection
	// was lost (not the first one, in Start).
	ListenerReconnected()
}

type noMetrics struct{}

func (noMetrics) ListenerReconnected() {}
