package listener

import "github.com/streamer-dev/streamer/internal/testsignal"

// TestSignals are the listener's test signals. Tests allocate one, call Init,
// and pass it in Config.TestSignals; production leaves that field nil.
type TestSignals struct {
	// Listening fires after each successful LISTEN (in Start and after every
	// reconnect) with the backend PID of the listening connection.
	Listening testsignal.TestSignal[uint32]

	// BackoffError fires with the error that made the listener back off: the
	// error that broke an established connection, and each failed reconnect
	// attempt.
	BackoffError testsignal.TestSignal[error]

	// Woke fires after each Waker.Wake call with the number of notifications
	// that wake coalesced; 0 for the wake that follows a LISTEN.
	Woke testsignal.TestSignal[int]
}

// Init enables every signal. Call it before Start.
func (s *TestSignals) Init() {
	s.Listening.Init()
	s.BackoffError.Init()
	s.Woke.Init()
}
