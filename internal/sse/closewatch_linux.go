//go:build linux

package sse

import (
	"fmt"
	"syscall"
)

// closeWatch tells a Hub which attached connections their clients closed,
// without a syscall per connection while they stay open: every hijacked
// socket is registered, once, in an epoll instance of the hub's own (beside
// the Go runtime's, which it does not disturb) for EPOLLRDHUP, edge
// triggered, and one goroutine waits on it. The kernel reports a
// connection when its client shut down its side (FIN: EPOLLRDHUP) or reset
// it (EPOLLHUP, EPOLLERR, always reported); edge triggering reports each
// once. A socket that is closed leaves the epoll set by itself (Go holds
// the only descriptor of it), so finishing a Conn costs nothing here
// either; an event for a connection already gone finds no id and is
// ignored. Ids, not descriptors, name connections, since a descriptor
// number is reused as soon as it is closed.
type closeWatch struct {
	epfd int
	stop [2]int // a pipe; a byte written to stop[1] ends wait
}

// epollET is EPOLLET as the uint32 of EpollEvent.Events (syscall declares
// it a negative int).
const epollET = 1 << 31

// stopID is the epoll data of the stop pipe; connections' ids start at 1.
const stopID = 0

// newCloseWatch returns a closeWatch, or an error when the kernel gives no
// epoll instance or pipe (the hub then peeks instead).
func newCloseWatch() (*closeWatch, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	w := &closeWatch{epfd: epfd}
	if err := syscall.Pipe2(w.stop[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, w.stop[0], &ev); err != nil {
		w.close()
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return w, nil
}

// add registers the socket behind rc under id (non-zero) and reports
// whether it did; a client that closed already is reported at once.
func (w *closeWatch) add(rc syscall.RawConn, id uint64) bool {
	if rc == nil {
		return false
	}
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLRDHUP | epollET,
		Fd:     int32(uint32(id)),
		Pad:    int32(uint32(id >> 32)),
	}
	var cerr error
	err := rc.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	return err == nil && cerr == nil
}

// wait calls gone with the id of each registered connection whose client
// closed it, until stopWait is called.
func (w *closeWatch) wait(gone func(id uint64)) {
	var evs [128]syscall.EpollEvent
	for {
		n, err := syscall.EpollWait(w.epfd, evs[:], -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return // cannot happen with a valid epfd; Conns are still closed by writes and Stop
		}
		for _, ev := range evs[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == stopID {
				return
			}
			gone(id)
		}
	}
}

// stopWait makes wait return.
func (w *closeWatch) stopWait() {
	_, _ = syscall.Write(w.stop[1], []byte{0})
}

// close releases the epoll instance and the pipe; wait must have returned.
func (w *closeWatch) close() {
	_ = syscall.Close(w.epfd)
	_ = syscall.Close(w.stop[0])
	_ = syscall.Close(w.stop[1])
}
