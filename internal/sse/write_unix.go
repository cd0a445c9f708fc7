//go:build unix

package sse

import (
	"net"
	"syscall"
)

// rawConn returns nc's descriptor for writeNonBlocking, or nil when nc has
// none (a TLS connection, a pipe in tests).
func rawConn(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// writeNonBlocking makes one write(2) of b on the non-blocking descriptor:
// it never waits for room and sets no deadline. It returns how much was
// written and errWouldBlock when the socket buffer had no room for all of
// b.
func writeNonBlocking(rc syscall.RawConn, b []byte) (int, error) {
	var n int
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), b)
			if werr != syscall.EINTR {
				break
			}
		}
		return true // one attempt: never wait for writability
	})
	n = max(n, 0)
	switch {
	case err != nil:
		return n, err
	case werr == syscall.EAGAIN || (werr == nil && n < len(b)):
		return n, errWouldBlock
	}
	return n, werr
}
