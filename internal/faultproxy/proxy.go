package faultproxy

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"
)

// dialTimeout bounds one dial of the upstream.
const dialTimeout = 5 * time.Second

// DialFunc connects to the upstream.
type DialFunc func(ctx context.Context) (net.Conn, error)

// Dial returns a DialFunc for network and address ("tcp", "127.0.0.1:5432";
// "unix", "/path/.s.PGSQL.5432").
func Dial(network, address string) DialFunc {
	var d net.Dialer
	return func(ctx context.Context) (net.Conn, error) {
		return d.DialContext(ctx, network, address)
	}
}

// Direction names one or both directions of a connection.
type Direction int

const (
	Up   Direction = 1 << iota // client to upstream
	Down                       // upstream to client
	Both = Up | Down
)

func (d Direction) String() string {
	switch d {
	case Up:
		return "up"
	case Down:
		return "down"
	case Both:
		return "both"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Fault is what happens to the bytes of one direction. The zero Fault
// passes them on at once.
type Fault struct {
	// Delay holds every chunk this long after it was read.
	Delay time.Duration
	// Blackhole drops every byte and closes nothing; it overrides Delay.
	Blackhole bool
}

// Pass forwards bytes as they arrive.
var Pass = Fault{}

// Proxy accepts connections on a loopback address and forwards each to the
// upstream, applying the faults set on it.
type Proxy struct {
	ln     net.Listener
	dial   DialFunc
	ctx    context.Context // cancelled by Close: ends dials in progress
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every connection's goroutines

	mu        sync.Mutex
	defaults  [2]Fault // for new connections, by direction index
	refuseNew bool
	conns     []*Conn // open, in accept order
	nextID    uint64
	closed    bool
}

// Start listens on 127.0.0.1 (a free port) and proxies every connection to
// the upstream that dial reaches.
func Start(dial DialFunc) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{ln: ln, dial: dial, ctx: ctx, cancel: cancel}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listening address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes every connection and waits for every
// goroutine of the proxy to exit.
func (p *Proxy) Close() error {
	p.mu.Lock()
	already := p.closed
	p.closed = true
	conns := slices.Clone(p.conns)
	p.mu.Unlock()
	var err error
	if !already {
		p.cancel()
		err = p.ln.Close()
	}
	for _, c := range conns {
		c.close(false)
	}
	p.wg.Wait()
	return err
}

// SetAll sets f on dir of every open connection and makes it the default
// for new ones.
func (p *Proxy) SetAll(dir Direction, f Fault) {
	p.mu.Lock()
	for _, i := range dir.indexes() {
		p.defaults[i] = f
	}
	conns := slices.Clone(p.conns)
	p.mu.Unlock()
	for _, c := range conns {
		c.Set(dir, f)
	}
}

// ResetAll resets every open connection (see [Conn.Reset]) and returns how
// many there were.
func (p *Proxy) ResetAll() int {
	conns := p.Conns()
	for _, c := range conns {
		c.Reset()
	}
	return len(conns)
}

// RefuseNew, when on, makes the proxy reset every new connection as soon as
// it is accepted, without dialing the upstream.
func (p *Proxy) RefuseNew(on bool) {
	p.mu.Lock()
	p.refuseNew = on
	p.mu.Unlock()
}

// Conns returns the open connections, oldest first.
func (p *Proxy) Conns() []*Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.conns)
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed; Accept's other errors are not retried in tests
		}
		p.mu.Lock()
		refuse := p.refuseNew || p.closed
		p.mu.Unlock()
		if refuse {
			reset(client)
			continue
		}
		// Dial in the connection's own goroutine: a blackholed or slow
		// upstream must not hold up other accepts.
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.open(client)
		}()
	}
}

// open dials the upstream for client and starts forwarding.
func (p *Proxy) open(client net.Conn) {
	ctx, cancel := context.WithTimeout(p.ctx, dialTimeout)
	upstream, err := p.dial(ctx)
	cancel()
	if err != nil {
		reset(client)
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		reset(client)
		_ = upstream.Close()
		return
	}
	p.nextID++
	c := &Conn{p: p, id: p.nextID, client: client, upstream: upstream, done: make(chan struct{})}
	for i := range c.dirs {
		c.dirs[i].fault = p.defaults[i]
		c.dirs[i].queue = make(chan chunk, queueChunks)
	}
	p.conns = append(p.conns, c)
	p.wg.Add(4)
	p.mu.Unlock()

	go c.read(&c.dirs[0], client, true)
	go c.write(&c.dirs[0], upstream)
	go c.read(&c.dirs[1], upstream, false)
	go c.write(&c.dirs[1], client)
}

func (p *Proxy) remove(c *Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = slices.DeleteFunc(p.conns, func(x *Conn) bool { return x == c })
}

func (d Direction) indexes() []int {
	var out []int
	if d&Up != 0 {
		out = append(out, 0)
	}
	if d&Down != 0 {
		out = append(out, 1)
	}
	return out
}

// reset closes conn with SO_LINGER 0, so that its peer gets a RST.
func reset(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
