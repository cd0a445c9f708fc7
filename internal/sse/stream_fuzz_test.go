package sse

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzEventStream checks a stream of several frames, as the server writes
// them, through two independent parsers (tmaxmax/go-sse and
// launchdarkly/eventsource): a comment, an untyped event, another comment,
// a typed event. Comments must vanish, each event must arrive whole, with
// its data's line ends normalised to LF, with the id the decoder reports:
// launchdarkly's Decoder gives each frame's own id field (none for a frame
// without one or with NUL in it), go-sse's Read keeps the last id across such
// a frame, as the spec's "last event ID buffer" does. Seeds are in testdata/fuzz/FuzzEventStream.
func FuzzEventStream(f *testing.F) {
	f.Fuzz(func(t *testing.T, comment, id1, data1, id2, event2, data2 string) {
		var stream []byte
		stream = AppendComment(stream, comment)
		stream = AppendEvent(stream, id1, "", data1)
		stream = AppendComment(stream, comment)
		stream = AppendEvent(stream, id2, event2, data2)

		require.NotContains(t, string(stream), "\r", "only LF is written")
		first := wantEvent{ID: frameID(id1), Data: normalize(data1)}
		second := wantEvent{ID: frameID(id2), Type: firstLineRef(event2), Data: normalize(data2)}
		require.Equal(t, []wantEvent{first, second}, parseLaunchDarkly(t, bytes.NewReader(stream)), "launchdarkly")
		if second.ID == "" {
			second.ID = first.ID // no usable id field: the buffer keeps the last one
		}
		require.Equal(t, []wantEvent{first, second}, parseGoSSE(t, stream), "go-sse")
	})
}

// frameID is the id a decoder reports for a frame written with id: its
// first line, or "" when that holds NUL (clients ignore the field).
func frameID(id string) string {
	id = firstLineRef(id)
	if strings.ContainsRune(id, 0) {
		return ""
	}
	return id
}
