package client

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestEventAccounting feeds one connection events as its reader would and
// checks what a report then says about them.
func TestEventAccounting(t *testing.T) {
	t.Parallel()
	server, client := net.Pipe()
	defer server.Close()
	w := &worker{}
	c := &clientConn{w: w, stream: []byte("s"), nc: client}
	w.conns = []*clientConn{c}

	ev := func(stream string, n int64) {
		c.now = time.Now().UnixNano()
		c.event(nil, nil, fmt.Appendf(nil, "%s %d %d pad", stream, n, c.now-int64(time.Millisecond)))
	}
	ev("s", 1)
	ev("s", 3)
	ev("s", 2)                                // reordered
	ev("s", 3)                                // duplicate
	ev("other", 4)                            // another stream
	c.event(nil, nil, []byte("s x 1"))        // malformed
	c.event(nil, []byte("streamer.gap"), nil) // a gap
	c.event(nil, []byte("streamer.shutdown"), nil)

	r := w.report(map[string]int64{"s": 4}, 0)
	require.Equal(t, 1, r.Conns)
	require.Equal(t, 1, r.Open)
	require.False(t, r.Complete, "event 4 never came")
	require.Equal(t, int64(1), r.Missing)
	require.Equal(t, int64(1), r.Duplicates)
	require.Equal(t, int64(1), r.Reordered)
	require.Equal(t, int64(2), r.Unexpected)
	require.Equal(t, int64(1), r.Gaps)
	require.Equal(t, int64(1), r.Other)
	require.Equal(t, int64(3), r.MinGot)
	require.Equal(t, int64(4), r.Deliveries, "every well-formed event of the stream, duplicates too")
	require.NotEmpty(t, r.Latency.Buckets)

	w.closeAll()
}

func TestParseUint(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"0": 0, "42": 42, "9223372036854775807": 1<<63 - 1} {
		n, ok := parseUint([]byte(in))
		require.True(t, ok, in)
		require.Equal(t, want, n, in)
	}
	for _, in := range []string{"", "-1", "1a", "9223372036854775808", "12345678901234567890"} {
		_, ok := parseUint([]byte(in))
		require.False(t, ok, in)
	}
}

func TestOrDefault(t *testing.T) {
	t.Parallel()
	require.Equal(t, time.Second, orDefault(time.Second, time.Minute))
	require.Equal(t, time.Minute, orDefault(0, time.Minute))
	require.Equal(t, time.Minute, orDefault(-time.Second, time.Minute))
}
