package faultproxy

import (
	"io"
	"net"
	"sync"
	"time"
)

const (
	// headBytes is how much of what the client sends first is kept.
	headBytes = 1024
	// queueChunks bounds the chunks read but not yet written in one
	// direction; beyond it the reader waits, as TCP would.
	queueChunks = 64
	// chunkBytes is the size of one read.
	chunkBytes = 32 << 10
)

// Conn is one proxied connection.
type Conn struct {
	p        *Proxy
	id       uint64
	client   net.Conn
	upstream net.Conn
	dirs     [2]direction // Up, Down

	mu        sync.Mutex
	head      []byte
	closeOnce sync.Once
	done      chan struct{} // closed once both sockets are closed
}

type direction struct {
	mu      sync.Mutex
	fault   Fault
	dropped int64 // bytes blackholed
	passed  int64 // bytes written
	queue   chan chunk
}

type chunk struct {
	data []byte
	due  time.Time
}

// ID numbers connections in accept order, from 1.
func (c *Conn) ID() uint64 { return c.id }

// Head returns a copy of the first bytes (up to 1 KiB) the client sent.
func (c *Conn) Head() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.head...)
}

// Done is closed when the connection has been closed, by either side or by
// a fault.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Set applies f to dir of this connection.
func (c *Conn) Set(dir Direction, f Fault) {
	for _, i := range dir.indexes() {
		d := &c.dirs[i]
		d.mu.Lock()
		d.fault = f
		d.mu.Unlock()
	}
}

// Dropped returns how many bytes of dir were blackholed.
func (c *Conn) Dropped(dir Direction) int64 {
	return c.sum(dir, func(d *direction) int64 { return d.dropped })
}

// Passed returns how many bytes of dir were forwarded. A chunk counts once
// its write has returned, so the far end may have read it a moment before.
func (c *Conn) Passed(dir Direction) int64 {
	return c.sum(dir, func(d *direction) int64 { return d.passed })
}

// sum adds up one counter, read by count under each direction's lock, over
// the directions of dir.
func (c *Conn) sum(dir Direction, count func(*direction) int64) int64 {
	var n int64
	for _, i := range dir.indexes() {
		d := &c.dirs[i]
		d.mu.Lock()
		n += count(d)
		d.mu.Unlock()
	}
	return n
}

// Reset closes the connection with a RST to the client (SO_LINGER 0) and
// closes the upstream socket.
func (c *Conn) Reset() { c.close(true) }

// CloseWrite ends one direction in an orderly way: its receiver reads end
// of stream (a FIN), later bytes of that direction are dropped, and the
// other direction goes on until its own end.
func (c *Conn) CloseWrite(dir Direction) {
	c.Set(dir, Fault{Blackhole: true})
	for _, i := range dir.indexes() {
		dst := c.upstream
		if i == 1 {
			dst = c.client
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}
}

func (c *Conn) close(rst bool) {
	c.closeOnce.Do(func() {
		if rst {
			reset(c.client)
		} else {
			_ = c.client.Close()
		}
		_ = c.upstream.Close()
		c.p.remove(c)
		close(c.done)
	})
}

// faultOf returns the fault in force on d now.
func (d *direction) faultOf() Fault {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fault
}

// read copies src into d's queue, dropping what a blackhole swallows. The
// first read error ends the direction; EOF or not, the whole connection is
// then closed once the queue is flushed.
func (c *Conn) read(d *direction, src net.Conn, keepHead bool) {
	defer c.p.wg.Done()
	defer close(d.queue)
	for {
		buf := make([]byte, chunkBytes)
		n, err := src.Read(buf)
		if n > 0 {
			if keepHead {
				c.keepHead(buf[:n])
			}
			f := d.faultOf()
			if f.Blackhole {
				d.mu.Lock()
				d.dropped += int64(n)
				d.mu.Unlock()
			} else {
				select {
				case d.queue <- chunk{data: buf[:n], due: time.Now().Add(f.Delay)}:
				case <-c.done:
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (c *Conn) keepHead(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := headBytes - len(c.head); room > 0 {
		c.head = append(c.head, b[:min(room, len(b))]...)
	}
}

// write forwards d's queue to dst, each chunk at its due time, unless a
// blackhole was set in the meantime. When the queue ends (the reader saw
// EOF or an error) the connection is closed.
func (c *Conn) write(d *direction, dst net.Conn) {
	defer c.p.wg.Done()
	defer c.close(false)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for ch := range d.queue {
		if wait := time.Until(ch.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-c.done:
				return
			}
		}
		if d.faultOf().Blackhole {
			d.mu.Lock()
			d.dropped += int64(len(ch.data))
			d.mu.Unlock()
			continue
		}
		if _, err := dst.Write(ch.data); err != nil {
			// The deferred close ends the reader too: it waits on done.
			return
		}
		d.mu.Lock()
		d.passed += int64(len(ch.data))
		d.mu.Unlock()
	}
}

var _ io.Closer = (*Proxy)(nil)
