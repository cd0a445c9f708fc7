//go:build !linux

package sse

import (
	"errors"
	"syscall"
)

// closeWatch: no epoll on this platform; the hub peeks at quiet
// connections instead (see Hub.checkIdle).
type closeWatch struct{}

func newCloseWatch() (*closeWatch, error) { return nil, errors.ErrUnsupported }

func (*closeWatch) add(syscall.RawConn, uint64) bool { return false }
func (*closeWatch) wait(func(uint64))                {}
func (*closeWatch) stopWait()                        {}
func (*closeWatch) close()                           {}
