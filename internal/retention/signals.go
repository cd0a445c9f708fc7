package retention

import "github.com/streamer-dev/streamer/internal/testsignal"

// TestSignals are the service's test signals. Tests allocate one, call Init,
// and pass it in Config.TestSignals; production leaves that field nil.
type TestSignals struct {
	// Locked fires when a pass has taken the service lock, before its
	// first step.
	Locked testsignal.TestSignal[struct{}]

	// PassDone fires after every pass, also one that found the lock taken
	// (Skipped) or failed (Err).
	PassDone testsignal.TestSignal[Pass]
}

// Init enables every signal. Call it before Start.
func (s *TestSignals) Init() {
	s.Locked.Init()
	s.PassDone.Init()
}
