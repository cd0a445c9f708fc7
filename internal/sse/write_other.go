//go:build !unix

package sse

import (
	"errors"
	"net"
	"syscall"
)

// rawConn: no non-blocking writes on this platform; every write is a
// net.Conn.Write with a deadline.
func rawConn(net.Conn) syscall.RawConn { return nil }

func writeNonBlocking(syscall.RawConn, []byte) (int, error) {
	return 0, errors.ErrUnsupported
}
