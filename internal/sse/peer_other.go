//go:build !unix

package sse

import "syscall"

// peerClosed cannot peek on this platform; a closed client is noticed on
// the next write (at the latest the next heartbeat).
func peerClosed(syscall.RawConn) bool { return false }
