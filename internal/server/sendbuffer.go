package server

import (
	"net"

	"github.com/rs/zerolog"
)

// sendBufferListener sets the kernel send buffer (SO_SNDBUF) of every
// connection it accepts. A socket with SO_SNDBUF set is no longer
// autotuned, so what the kernel holds for a client that stops reading, and
// for a connection the server cut (an orphan still draining), is bounded
// by it: Linux doubles the value asked for, for its bookkeeping.
type sendBufferListener struct {
	net.Listener
	bytes int
	log   zerolog.Logger
}

func (l sendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	if w, ok := c.(interface{ SetWriteBuffer(int) error }); ok {
		if err := w.SetWriteBuffer(l.bytes); err != nil {
			l.log.Warn().Err(err).Int("bytes", l.bytes).Msg("could not set the socket send buffer")
		}
	}
	return c, nil
}
