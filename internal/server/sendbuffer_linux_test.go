package server_test

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/testnet"
)

// sendBufferOf returns the SO_SNDBUF the kernel reports for the server's
// end of a connection.
func sendBufferOf(t *testing.T, c net.Conn) int {
	t.Helper()
	n, err := testnet.SendBuffer(c)
	require.NoError(t, err)
	return n
}

// TestSendBuffer: with Config.SendBuffer, the server's end of an SSE
// connection has that send buffer (Linux reports twice the value set);
// without it, the kernel's own.
func TestSendBuffer(t *testing.T) {
	t.Parallel()
	const capBytes = 12 << 10
	for _, tc := range []struct {
		name  string
		bytes int
	}{{"capped", capBytes}, {"kernel default", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			accepted := make(chan net.Conn, 16)
			s := setup(t, func(o *stackOpts) {
				o.server.SendBuffer = tc.bytes
				o.server.Listen = testnet.Listen(func(ln net.Listener) net.Listener {
					return testnet.Recorder{Listener: ln, Accepted: accepted}
				})
			})
			c := subscribe(t, s.url, []string{"sndbuf"}, "")
			defer c.close()
			s.waitLive(t, 1)
			got := sendBufferOf(t, <-accepted)
			if tc.bytes > 0 {
				require.Equal(t, 2*tc.bytes, got, "SO_SNDBUF of the stream's socket")
			} else {
				require.NotEqual(t, 2*capBytes, got, "SO_SNDBUF of the stream's socket")
			}
			s.publish(t, "sndbuf", "still delivered")
			require.Equal(t, "still delivered", c.next().Data)
		})
	}
}
