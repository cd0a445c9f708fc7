package batch

import "github.com/streamer-dev/streamer/internal/testsignal"

// TestSignals report the batcher's progress to tests. Uninitialised
// signals are no-ops, which is how production runs them. Initialise only
// the signals a test waits on: an unread signal overflows its buffer.
type TestSignals struct {
	Enqueued   testsignal.TestSignal[int]    // a group of this many events entered the queue
	Taken      testsignal.TestSignal[string] // a batch was taken, for this reason: events, bytes, delay, callers, flush or closing
	Committing testsignal.TestSignal[uint32] // about to send COMMIT, on the backend with this PID
	Committed  testsignal.TestSignal[int]    // a batch of this many events committed
	Backoff    testsignal.TestSignal[error]  // an attempt failed with this error and will be retried
	Resolved   testsignal.TestSignal[string] // pg_xact_status after an interrupted COMMIT
	Rejected   testsignal.TestSignal[error]  // the database refused a batch's rows; bisecting
}

// Init enables every signal.
func (s *TestSignals) Init() {
	s.Enqueued.Init()
	s.Taken.Init()
	s.Committing.Init()
	s.Committed.Init()
	s.Backoff.Init()
	s.Resolved.Init()
	s.Rejected.Init()
}
