package server_test

import (
	"context"
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// acceptRecorder is a TCP listener that hands every accepted connection to
// the test as well.
type acceptRecorder struct {
	net.Listener
	accepted chan net.Conn
}

func (l acceptRecorder) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted <- c
	}
	return c, err
}

// sendBufferOf returns the SO_SNDBUF the kernel reports for the server's
// end of a connection.
func sendBufferOf(t *testing.T, c net.Conn) int {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	var n int
	var serr error
	require.NoError(t, raw.Control(func(fd uintptr) { n, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF) }))
	require.NoError(t, serr)
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
				o.server.Listen = func(ctx context.Context, network, addr string) (net.Listener, error) {
					var lc net.ListenConfig
					ln, err := lc.Listen(ctx, network, addr)
					return acceptRecorder{Listener: ln, accepted: accepted}, err
				}
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
