package dispatch

import (
	"errors"
	"time"

	"github.com/streamer-dev/streamer/internal/metrics"
	"github.com/streamer-dev/streamer/internal/sse"
)

// Metrics receives the dispatcher's counts; *metrics.Metrics implements it.
// Config.Metrics nil counts nothing. Its methods are called from the
// dispatcher goroutine and the replay workers, so they must be safe for
// concurrent use and must not block.
type Metrics interface {
	// Delivered adds n frames queued on connections: once per turn of the
	// dispatcher loop (a wake, a replay joining, ...) and once per replay
	// page, never once per frame.
	Delivered(n int)
	// Replayed adds the n of them that a replay worker queued.
	Replayed(n int)
	// DBRead observes one read: metrics.ReadLive, ReadReplay, ReadHead or
	// ReadSequencer, and whether it failed (not counting the dispatcher's
	// stopping).
	DBRead(kind string, d time.Duration, failed bool)
	// ReplayStarted counts a Subscribe with a resume position.
	ReplayStarted()
	// ReplayPaced observes a replay page's wait for ReplayRate.
	ReplayPaced(d time.Duration)
	// ReplayPageCached counts a replay page taken from the page cache.
	ReplayPageCached()
	// SlowConsumerDisconnected counts a live subscriber whose queue was
	// full (sse.ErrSlowConsumer), dropped by the dispatcher.
	SlowConsumerDisconnected()
	// TickNotes counts n tick notifications by what became of them
	// (metrics.NoteApplied, ...).
	TickNotes(outcome string, n int)
}

var _ Metrics = (*metrics.Metrics)(nil)

// noMetrics is the default Metrics.
type noMetrics struct{}

func (noMetrics) Delivered(int)                      {}
func (noMetrics) Replayed(int)                       {}
func (noMetrics) DBRead(string, time.Duration, bool) {}
func (noMetrics) ReplayStarted()                     {}
func (noMetrics) ReplayPaced(time.Duration)          {}
func (noMetrics) ReplayPageCached()                  {}
func (noMetrics) SlowConsumerDisconnected()          {}
func (noMetrics) TickNotes(string, int)              {}

// flushDelivered reports the frames the dispatcher goroutine queued since
// the last flush. Called once per turn of its loop: the count is a plain
// integer of that goroutine, so a delivery costs an increment, not an
// atomic operation.
func (d *Dispatcher) flushDelivered() {
	if d.queued > 0 {
		d.cfg.Metrics.Delivered(d.queued)
		d.queued = 0
	}
}

// dropped counts a subscriber Enqueue refused, if it was refused for being
// slow: Enqueue also refuses a subscriber that was closed for another reason
// and has not been unsubscribed yet. A Subscriber without Err is taken at its
// word (false means it could not keep up).
func (d *Dispatcher) dropped(sub Subscriber) {
	if e, ok := sub.(interface{ Err() error }); ok && !errors.Is(e.Err(), sse.ErrSlowConsumer) {
		return
	}
	d.cfg.Metrics.SlowConsumerDisconnected()
}
