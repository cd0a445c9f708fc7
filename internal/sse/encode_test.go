package sse

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const injection = "\n\nevent: x\ndata: y\r\nid: 9"

func TestAppendEvent(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name             string
		id, event, data  string
		want             string
		wantID, wantType string // as parsed, when not id/event themselves
	}{
		{name: "data only", data: `{"a":1}`, want: "data: {\"a\":1}\n\n"},
		{name: "all fields", id: "7", event: "order.paid", data: "x", want: "id: 7\nevent: order.paid\ndata: x\n\n"},
		{name: "empty data", want: "data: \n\n"},
		{name: "trailing LF", data: "x\n", want: "data: x\ndata: \n\n"},
		{name: "only LF", data: "\n", want: "data: \ndata: \n\n"},
		{name: "leading LF", data: "\nx", want: "data: \ndata: x\n\n"},
		{name: "mixed line ends", data: "a\r\nb\rc\nd", want: "data: a\ndata: b\ndata: c\ndata: d\n\n"},
		{name: "CRLF pairs", data: "\r\n\r\n", want: "data: \ndata: \ndata: \n\n"},
		{name: "two CRs", data: "\r\r", want: "data: \ndata: \ndata: \n\n"},
		{name: "LF then CR is two breaks", data: "a\n\rb", want: "data: a\ndata: \ndata: b\n\n"},
		{name: "trailing CR", data: "a\r", want: "data: a\ndata: \n\n"},
		{name: "leading space kept", data: " x", want: "data:  x\n\n"},
		{name: "colon in data", data: "id: 1", want: "data: id: 1\n\n"},
		{name: "unicode", data: "héllo\n世界", want: "data: héllo\ndata: 世界\n\n"},
		{
			name: "injection", id: "1", data: injection,
			want: "id: 1\ndata: \ndata: \ndata: event: x\ndata: data: y\ndata: id: 9\n\n",
		},
		{
			name: "id and event cut at line break", id: "5\n\ndata: evil", event: "a\rb", data: "ok",
			want:   "id: 5\nevent: a\ndata: ok\n\n",
			wantID: "5", wantType: "a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got := AppendEvent(nil, tt.id, tt.event, tt.data)
			require.Equal(t, tt.want, string(got))

			prefix := []byte("keep: me\n")
			require.Equal(t, "keep: me\n"+tt.want, string(AppendEvent(prefix, tt.id, tt.event, tt.data)))

			want := wantEvent{ID: tt.id, Type: tt.event, Data: normalize(tt.data)}
			if tt.wantID != "" || tt.wantType != "" {
				want.ID, want.Type = tt.wantID, tt.wantType
			}
			require.Equal(t, []wantEvent{want}, parseGoSSE(t, got))
			require.Equal(t, []wantEvent{want}, parseLaunchDarkly(t, bytes.NewReader(got)))
		})
	}
}

func TestAppendEventAllocs(t *testing.T) {
	// Not parallel: AllocsPerRun counts the allocations of every goroutine.
	dst := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		dst = AppendEvent(dst[:0], "12345", "order.paid", "line one\r\nline two\nline three")
	})
	require.Zero(t, allocs)
}

func TestAppendComment(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, text, want string
	}{
		{name: "ping", text: "ping", want: ": ping\n"},
		{name: "empty", text: "", want: ": \n"},
		{name: "multi-line", text: "a\r\nb\rc\nd", want: ": a\n: b\n: c\n: d\n"},
		{name: "injection", text: "x\n\ndata: y\n", want: ": x\n: \n: data: y\n: \n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got := AppendComment(nil, tt.text)
			require.Equal(t, tt.want, string(got))

			// Comments are invisible to a client, before, between and after
			// events, and never end or split an event.
			stream := AppendComment(nil, tt.text)
			stream = AppendEvent(stream, "1", "", "a")
			stream = AppendComment(stream, tt.text)
			stream = AppendEvent(stream, "2", "", "b")
			stream = AppendComment(stream, tt.text)
			want := []wantEvent{{ID: "1", Data: "a"}, {ID: "2", Data: "b"}}
			require.Equal(t, want, parseGoSSE(t, stream))
			require.Equal(t, want, parseLaunchDarkly(t, bytes.NewReader(stream)))
		})
	}
}

func TestAppendRetry(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{name: "seconds", d: 2 * time.Second, want: "retry: 2000\n\n"},
		{name: "truncated to ms", d: 1500 * time.Microsecond, want: "retry: 1\n\n"},
		{name: "zero", d: 0, want: "retry: 0\n\n"},
		{name: "negative", d: -time.Second, want: "retry: 0\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got := AppendRetry(nil, tt.d)
			require.Equal(t, tt.want, string(got))

			// A retry frame dispatches no event.
			stream := AppendEvent(AppendRetry(nil, tt.d), "1", "", "a")
			require.Equal(t, []wantEvent{{ID: "1", Data: "a"}}, parseGoSSE(t, stream))
		})
	}
}

// FuzzAppendEvent checks the round trip through two independent parsers:
// one event, whose data is the input with line ends normalised to LF and
// whose id and type are the inputs' first lines.
func FuzzAppendEvent(f *testing.F) {
	seeds := [][3]string{
		{"", "", ""},
		{"1", "", "x\n"},
		{"9", "t", injection},
		{"", "", "a\r\nb\rc\nd"},
		{"id\nx", "ev\r\ny", "\r\n\r\r\n\n"},
		{" sp", " ev", " data "},
		{"", "", "\xff\xfe\x00"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, id, event, data string) {
		frame := AppendEvent(nil, id, event, data)

		require.True(t, bytes.HasSuffix(frame, []byte("\n\n")), "frame ends with a blank line")
		require.Equal(t, len(frame)-2, bytes.Index(frame, []byte("\n\n")), "the only blank line is the last")
		require.NotContains(t, string(frame), "\r")

		want := wantEvent{ID: firstLineRef(id), Type: firstLineRef(event), Data: normalize(data)}
		if strings.ContainsRune(want.ID, 0) {
			want.ID = "" // clients ignore an id containing NUL
		}
		require.Equal(t, []wantEvent{want}, parseGoSSE(t, frame))
		require.Equal(t, []wantEvent{want}, parseLaunchDarkly(t, bytes.NewReader(frame)))
	})
}

// firstLineRef is the test's own statement of the id/event rule.
func firstLineRef(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	s, _, _ = strings.Cut(s, "\r")
	return s
}
