package dispatch

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/testsignal"
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
	for _, s := range subs {
		require.Equal(t, events, recv(t, s.releases), "released once, after the turn's last frame")
		for i := range events {
			require.Equal(t, fmt.Sprint(i), s.next(t))
		}
	}
	readCaughtUp(t, d, b) // a later turn has ended
	for _, s := range subs {
		require.Empty(t, s.releases, "released again without frames")
	}
	require.Empty(t, other.releases)
}

// TestHeldReleasedAfterMaxHold: a turn that has held frames for longer
// than maxHold releases them without waiting for its end.
func TestHeldReleasedAfterMaxHold(t *testing.T) {
	t.Parallel()
	d := benchDispatcher(Config{})
	s := newFakeSub()
	st := &subState{sub: s}
	d.hold(st)
	require.Empty(t, s.releases, "released before maxHold")
	d.heldSince = time.Now().Add(-time.Second)
	d.queued = 256 // the clock is read every 256 deliveries
	d.hold(st)
	require.Equal(t, 0, recv(t, s.releases), "not released after maxHold")
	require.Empty(t, d.held)
	require.False(t, st.held)
}

// recv receives from ch or fails the test after a while.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testsignal.Timeout):
		t.Fatal("timed out waiting")
		panic("unreachable")
	}
}
