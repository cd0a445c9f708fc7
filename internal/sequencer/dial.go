package sequencer

import (
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// dialer returns the dial function of the sequencer's connection. Over TCP
// it bounds how long this server waits on a connection on which
// PostgreSQL stopped answering (a partition, a dropped NAT entry; no FIN
// or RST ever comes): TCP_USER_TIMEOUT (Linux) ends the connection once
// data it sent has gone unacknowledged for silence, which covers a tick
// sent into the void; keepalive probes from silence of quiet on cover a
// session that waits for the lock (with TCP_USER_TIMEOUT set, Linux ends
// the connection at the first probe that finds nothing heard for silence
// and a probe unanswered: about silence plus one probe interval). PostgreSQL acknowledges a
// statement as it arrives, so a tick that is slow to run is never cut. A
// unix socket gets neither, and timeout is the connect timeout.
func dialer(silence, timeout time.Duration) pgconn.DialFunc {
	d := &net.Dialer{
		Timeout: timeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Idle:     silence,
			Interval: max(silence/4, time.Second),
			Count:    4,
		},
		Control: func(network, _ string, c syscall.RawConn) error {
			switch network {
			case "tcp", "tcp4", "tcp6":
			default:
				return nil
			}
			var serr error
			if err := c.Control(func(fd uintptr) { serr = setUserTimeout(fd, silence) }); err != nil {
				return err
			}
			return serr
		},
	}
	return d.DialContext
}
