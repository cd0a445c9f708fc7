package dispatch

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestHeldReleasedAtEndOfTurn: a live read of several events queues every
// frame held and releases each subscriber once, after the last of them, so
// that its writer writes the turn in one write; a subscriber that got
// nothing is not released.
func TestHeldReleasedAtEndOfTurn(t *testing.T) {
	t.Parallel()
	const events = 7
	d, b := setup(t, nil)
	subs := []*fakeSub{subscribe(t, d, b, "s"), subscribe(t, d, b, "s")}
	other := subscribe(t, d, b, "other")
	for i := range events {
		b.publish(t, "s", fmt.Sprint(i))
	}
	require.Equal(t, events, readCaughtUp(t, d, b).Events, "one read, one turn")
	readCaughtUp(t, d, b) // the first read's loop turn has ended, and a second one
	for _, s := range subs {
		for i := range events {
			require.Equal(t, fmt.Sprint(i), s.next(t))
		}
		require.Equal(t, []int{events}, s.released(), "released once, after the turn's last frame")
	}
	require.Empty(t, other.released(), "released without frames")
}

// TestHeldReleasedAfterMaxHold: a turn that has held frames for longer
// than maxHold releases them without waiting for its end.
func TestHeldReleasedAfterMaxHold(t *testing.T) {
	t.Parallel()
	d := benchDispatcher(Config{})
	s := newFakeSub()
	st := &subState{sub: s}
	d.hold(st)
	require.Empty(t, s.released(), "released before maxHold")
	d.heldSince = time.Now().Add(-time.Second)
	d.queued = 256 // the clock is read every 256 deliveries
	d.hold(st)
	require.Equal(t, []int{0}, s.released(), "not released after maxHold")
	require.Empty(t, d.held)
	require.False(t, st.held)
}
