//go:build unix

package sse

import (
	"net"
	"syscall"
)

// peerClosed reports whether the client closed nc, without blocking and
// without consuming anything: a peek that returns no bytes and no error is
// end of stream.
func peerClosed(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr == syscall.EAGAIN || rerr == syscall.EINTR:
		case rerr != nil:
			closed = true
		case n == 0:
			closed = true
		}
		return true // never wait for readability
	})
	return closed || err != nil
}
