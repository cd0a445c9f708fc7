package testnet

import (
	"fmt"
	"net"
	"syscall"
)

// Recorder is a listener that hands every connection it accepts to the
// test too, on Accepted (which must have room: Accept blocks otherwise).
type Recorder struct {
	net.Listener
	Accepted chan<- net.Conn
}

// Accept accepts from the wrapped listener and sends the connection on
// Accepted before returning it.
func (l Recorder) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.Accepted <- c
	}
	return c, err
}

// SendBuffer returns the SO_SNDBUF the kernel reports for c, a TCP
// connection (Linux reports twice the value set).
func SendBuffer(c net.Conn) (int, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0, fmt.Errorf("send buffer of %T: not a TCP connection", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("send buffer: %w", err)
	}
	var n int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		n, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	}); err != nil {
		return 0, fmt.Errorf("send buffer: %w", err)
	}
	if serr != nil {
		return 0, fmt.Errorf("getsockopt SO_SNDBUF: %w", serr)
	}
	return n, nil
}
