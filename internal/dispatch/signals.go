package dispatch

import (
	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/testsignal"
)

// TestSignals report the dispatcher's progress to tests. Uninitialised
// signals are no-ops, which is how production runs them.
type TestSignals struct {
	Live        testsignal.TestSignal[Subscriber] // a subscriber went live after its replay
	ReplayRound testsignal.TestSignal[Subscriber] // a replay needed another round
	LiveRead    testsignal.TestSignal[int]        // a live read caught up, after this many pages
	ReadError   testsignal.TestSignal[error]      // a live read failed
	// PageCacheHit: a replay took the page after this position from the
	// page cache instead of the database.
	PageCacheHit testsignal.TestSignal[cursor.Position]
}

// Init enables every signal.
func (s *TestSignals) Init() {
	s.Live.Init()
	s.ReplayRound.Init()
	s.LiveRead.Init()
	s.ReadError.Init()
	s.PageCacheHit.Init()
}
