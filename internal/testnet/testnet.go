package testnet

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
)

// ListenFunc is how the server and the streamer command open their
// listener, so that a test can replace it.
type ListenFunc = func(ctx context.Context, network, addr string) (net.Listener, error)

// Listen returns a ListenFunc that listens for real and hands the
// listener to wrap.
func Listen(wrap func(net.Listener) net.Listener) ListenFunc {
	return func(ctx context.Context, network, addr string) (net.Listener, error) {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return wrap(ln), nil
	}
}

// ErrAcceptBroken is what a Breakable's Accept returns once broken: not a
// temporary error, so http.Server.Serve returns it.
var ErrAcceptBroken = errors.New("accept: listener broken (test)")

// Breakable is a real listener whose Accept fails for good once Break is
// called.
type Breakable struct {
	net.Listener
	broken atomic.Bool
}

// ListenBreakable returns a ListenFunc that listens for real, wraps the
// listener in a Breakable and sends it on got (which must have room).
func ListenBreakable(got chan<- *Breakable) ListenFunc {
	return Listen(func(ln net.Listener) net.Listener {
		b := &Breakable{Listener: ln}
		got <- b
		return b
	})
}

// Accept accepts as the listener does until Break; from then on it fails.
func (l *Breakable) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if l.broken.Load() {
		if c != nil {
			c.Close()
		}
		return nil, ErrAcceptBroken
	}
	return c, err
}

// Break makes every later Accept fail, and closes the listener to wake
// the Accept under way; it returns the error of that close.
func (l *Breakable) Break() error {
	l.broken.Store(true)
	return l.Listener.Close()
}
