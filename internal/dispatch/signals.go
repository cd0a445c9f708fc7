package dispatch

import (
	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/testsignal"
)

// TestSignals report the dispatcher's progress to tests. Uninitialised
// signals are no-ops, which is how production runs them.
type TestSignals struct {
	Live        testsignal.TestSignal[Subscriber] // a subscriber went live (at connect, or after its replay)
	ReplayRound testsignal.TestSignal[Subscriber] // a replay needed another round
	LiveRead    testsignal.TestSignal[LiveRead]   // a live read caught up
	Untrusted   testsignal.TestSignal[uint32]     // a tick note from this backend, not the sequencer's, was read instead
	ReadError   testsignal.TestSignal[error]      // a live read failed
	// PageCacheHit: a replay took the page after this position from the
	// page cache instead of the database.
	PageCacheHit testsignal.TestSignal[cursor.Position]
	// ReplayRead: a replay read the page after this position from the
	// database.
	ReplayRead testsignal.TestSignal[cursor.Position]
	// IDFrames: IDFrameDelay passed and the dispatcher sent this many
	// id-only frames to live subscribers behind hidden events.
	IDFrames testsignal.TestSignal[int]
}

// LiveRead describes the last page of a live read that caught up.
type LiveRead struct {
	// HeadOnly: nobody was subscribed, so only the head was read (or
	// taken from a tick's notification).
	HeadOnly bool
	// Notified: a tick's notification served instead of a read.
	Notified bool
	// Events is the number of events in the page.
	Events int
	// Streams is the number of stream names the read asked for; 0 means
	// every stream (more than 1,000 were subscribed).
	Streams int
}

// Init enables every signal.
func (s *TestSignals) Init() {
	s.Live.Init()
	s.ReplayRound.Init()
	s.LiveRead.Init()
	s.Untrusted.Init()
	s.ReadError.Init()
	s.PageCacheHit.Init()
	s.ReplayRead.Init()
	s.IDFrames.Init()
}
