//go:build unix

package sse

import "syscall"

// peerClosed reports whether the client closed the connection behind rc
// (see rawConn), without blocking and without consuming anything: a peek
// that returns no bytes and no error is end of stream. A nil rc cannot be
// peeked at: its client is noticed on the next write.
func peerClosed(rc syscall.RawConn) bool {
	if rc == nil {
		return false
	}
	closed := false
	var buf [1]byte
	err := rc.Read(func(fd uintptr) bool {
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
