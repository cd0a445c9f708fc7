package sequencer_test

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/streamer-dev/streamer/internal/sequencer"
)

// TestDialBoundsSilence: the sequencer's TCP connection ends once what it
// sent has gone unacknowledged for SilenceTimeout (TCP_USER_TIMEOUT), and
// probes a quiet connection after as long (keepalive), so that a server
// cut off from PostgreSQL without a FIN or RST notices.
func TestDialBoundsSilence(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })

	const silence = 7 * time.Second
	s := sequencer.New(sequencer.Config{DatabaseURL: "postgres://u@" + ln.Addr().String() + "/db", SilenceTimeout: silence})
	cfg, err := s.ConnConfig()
	require.NoError(t, err)
	conn, err := cfg.DialFunc(context.Background(), "tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })

	raw, err := conn.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	got := map[string]int{}
	require.NoError(t, raw.Control(func(fd uintptr) {
		for name, opt := range map[string][2]int{
			"TCP_USER_TIMEOUT": {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT},
			"SO_KEEPALIVE":     {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
			"TCP_KEEPIDLE":     {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
		} {
			v, err := unix.GetsockoptInt(int(fd), opt[0], opt[1])
			require.NoError(t, err, name)
			got[name] = v
		}
	}))
	require.Equal(t, map[string]int{
		"TCP_USER_TIMEOUT": int(silence.Milliseconds()),
		"SO_KEEPALIVE":     1,
		"TCP_KEEPIDLE":     int(silence.Seconds()),
	}, got)
}
