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

// writeSub is a fakeSub that can write its held frames itself, as an
// sse.Conn can (ReleaseWrite); it counts which release it was given.
type writeSub struct {
	*fakeSub
	inline int
}

func (s *writeSub) ReleaseWrite() {
	s.inline++
	s.Release()
}

// TestReleaseInline: a release of at most inlineRelease subscribers asks
// each that can to write its frames itself (ReleaseWrite); a larger one
// releases every subscriber to its writer (Release), as does, always, a
// subscriber that cannot.
func TestReleaseInline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		subs   int // in the release, the one plain subscriber included
		inline bool
	}{{2, true}, {inlineRelease, true}, {inlineRelease + 1, false}} {
		t.Run(fmt.Sprint(tc.subs), func(t *testing.T) {
			t.Parallel()
			d := benchDispatcher(Config{})
			d.queued = 1 // hold's early release (every 256 deliveries) stays out of it
			plain := newFakeSub()
			d.hold(&subState{sub: plain})
			var subs []*writeSub
			for range tc.subs - 1 {
				s := &writeSub{fakeSub: newFakeSub()}
				subs = append(subs, s)
				d.hold(&subState{sub: s})
			}
			d.releaseHeld()
			want := 0
			if tc.inline {
				want = 1
			}
			for _, s := range subs {
				require.Len(t, s.released(), 1)
				require.Equal(t, want, s.inline)
			}
			require.Len(t, plain.released(), 1)
		})
	}
}
