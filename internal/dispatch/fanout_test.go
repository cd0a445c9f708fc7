package dispatch

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFanoutSubscriberSwap: between two reads one subscriber of a stream
// leaves and another joins, so that the stream has as many subscribers as
// before: the second read reaches the newcomer and not the one that left
// (fanout looks states up once per registry snapshot).
func TestFanoutSubscriberSwap(t *testing.T) {
	t.Parallel()
	d, b := setup(t, nil)
	stay := subscribe(t, d, b, "s")
	leave := subscribe(t, d, b, "s")
	b.publish(t, "s", "one")
	readCaughtUp(t, d, b)
	require.Equal(t, "one", stay.next(t))
	require.Equal(t, "one", leave.next(t))

	d.Unsubscribe(leave)
	join := subscribe(t, d, b, "s") // taken after the Unsubscribe
	b.publish(t, "s", "two")
	readCaughtUp(t, d, b)
	require.Equal(t, "two", stay.next(t))
	require.Equal(t, "two", join.next(t))
	readCaughtUp(t, d, b) // the second read's loop turn has ended
	require.Empty(t, leave.frames, "nothing after it left")
}
