package faultproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamer-dev/streamer/internal/testsignal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo is an upstream that echoes every byte back and counts what it got.
type echo struct {
	ln       net.Listener
	wg       sync.WaitGroup
	accepted atomic.Int64
	received atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
	eofs     chan struct{} // one value per connection that read EOF
}

func newEcho(t *testing.T, network, address string) *echo {
	t.Helper()
	ln, err := net.Listen(network, address)
	require.NoError(t, err)
	e := &echo{ln: ln, eofs: make(chan struct{}, 100)}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					e.received.Add(int64(n))
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						if errors.Is(err, io.EOF) {
							e.eofs <- struct{}{}
						}
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		e.mu.Lock()
		for _, c := range e.conns {
			_ = c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func (e *echo) dial() DialFunc { return Dial(e.ln.Addr().Network(), e.ln.Addr().String()) }

// setup starts an echo upstream on TCP and a proxy in front of it.
func setup(t *testing.T) (*Proxy, *echo) {
	t.Helper()
	e := newEcho(t, "tcp", "127.0.0.1:0")
	p, err := Start(e.dial())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p, e
}

// connect dials the proxy and waits until the proxy lists the connection.
func connect(t *testing.T, p *Proxy) (net.Conn, *Conn) {
	t.Helper()
	before := len(p.Conns())
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	eventually(t, "the proxy to list the connection", func() bool { return len(p.Conns()) > before })
	conns := p.Conns()
	return c, conns[len(conns)-1]
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// roundTrip writes msg and reads the echo back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err := c.Write([]byte(msg))
	require.NoError(t, err)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, msg, string(got))
	require.NoError(t, c.SetDeadline(time.Time{}))
}

// readOne reads one byte from c, waiting at most 5 s, and returns the
// read's error: how the connection ended.
func readOne(t *testing.T, c net.Conn) error {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := c.Read(make([]byte, 1))
	return err
}

// requireNewConnPasses requires a new connection through p to carry msg
// to the upstream and back.
func requireNewConnPasses(t *testing.T, p *Proxy, msg string) {
	t.Helper()
	c, _ := connect(t, p)
	roundTrip(t, c, msg)
}

// requireSilent requires that a read on c times out: nothing arrives and
// the connection is neither closed nor reset. The wait is the read's own
// deadline; what is checked is the kind of error it ends with.
func requireSilent(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
	n, err := c.Read(make([]byte, 1))
	require.Zero(t, n)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "want a read timeout, got %v", err)
	require.NoError(t, c.SetReadDeadline(time.Time{}))
}

func TestFaultProxyPass(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	c, pc := connect(t, p)
	roundTrip(t, c, "hello")
	roundTrip(t, c, "again")
	require.Equal(t, "helloagain", string(pc.Head()))
	// A chunk is counted once its write has returned, which may be after
	// the other end has read it: wait for the counts, do not race them.
	require.Eventually(t, func() bool { return pc.Passed(Up) == 10 && pc.Passed(Down) == 10 },
		5*time.Second, time.Millisecond, "10 bytes counted each way")
	require.Equal(t, uint64(1), pc.ID())
}

func TestFaultProxyUnixUpstream(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "fp") // t.TempDir can exceed a socket path's 107 bytes
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	e := newEcho(t, "unix", filepath.Join(dir, "s"))
	p, err := Start(e.dial())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	requireNewConnPasses(t, p, "over a unix socket")
}

func TestFaultProxyDelay(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	c, pc := connect(t, p)
	const delay = 150 * time.Millisecond
	pc.Set(Up, Fault{Delay: delay})
	began := time.Now()
	roundTrip(t, c, "slow")
	// A lower bound only: a delayed chunk can never arrive early.
	require.GreaterOrEqual(t, time.Since(began), delay)

	pc.Set(Both, Pass)
	roundTrip(t, c, "fast again")
}

func TestFaultProxyBlackhole(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		dir          Direction
		upstreamGets bool // the upstream receives what the client sends
	}{
		{"both", Both, false},
		{"up", Up, false},
		{"down", Down, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, e := setup(t)
			c, pc := connect(t, p)
			roundTrip(t, c, "before")
			pc.Set(tc.dir, Fault{Blackhole: true})

			_, err := c.Write([]byte("lost"))
			require.NoError(t, err, "the client's writes still succeed")
			if tc.upstreamGets {
				eventually(t, "the echo to be dropped", func() bool { return pc.Dropped(Down) == 4 })
				require.EqualValues(t, 10, e.received.Load())
			} else {
				eventually(t, "the write to be dropped", func() bool { return pc.Dropped(Up) == 4 })
				require.EqualValues(t, 6, e.received.Load(), "nothing reached the upstream")
			}
			requireSilent(t, c)
			select {
			case <-pc.Done():
				t.Fatal("a blackhole closed the connection")
			default:
			}
			require.Len(t, p.Conns(), 1)
		})
	}
}

func TestFaultProxyReset(t *testing.T) {
	t.Parallel()
	p, e := setup(t)
	c, pc := connect(t, p)
	roundTrip(t, c, "x")
	pc.Reset()
	<-pc.Done()
	require.ErrorIs(t, readOne(t, c), syscall.ECONNRESET)
	testsignal.Receive(t, e.eofs, 5*time.Second, "the upstream did not see its connection end")
	require.Empty(t, p.Conns())
}

func TestFaultProxyResetAllAndRefuseNew(t *testing.T) {
	t.Parallel()
	p, e := setup(t)
	c1, _ := connect(t, p)
	c2, _ := connect(t, p)
	p.RefuseNew(true)
	require.Equal(t, 2, p.ResetAll())
	for _, c := range []net.Conn{c1, c2} {
		require.ErrorIs(t, readOne(t, c), syscall.ECONNRESET)
	}

	// A new connection is accepted and reset; the upstream never sees it.
	requireResetOnConnect(t, p.Addr())
	require.EqualValues(t, 2, e.accepted.Load())

	p.RefuseNew(false)
	requireNewConnPasses(t, p, "back")
}

func TestFaultProxySetAll(t *testing.T) {
	t.Parallel()
	p, e := setup(t)
	old, oldConn := connect(t, p)
	p.SetAll(Both, Fault{Blackhole: true})
	fresh, freshConn := connect(t, p)
	for _, tc := range []struct {
		c  net.Conn
		pc *Conn
	}{{old, oldConn}, {fresh, freshConn}} {
		_, err := tc.c.Write([]byte("gone"))
		require.NoError(t, err)
		eventually(t, "the write to be dropped", func() bool { return tc.pc.Dropped(Up) == 4 })
		requireSilent(t, tc.c)
	}
	require.Zero(t, e.received.Load())

	p.SetAll(Both, Pass)
	requireNewConnPasses(t, p, "pass")
}

func TestFaultProxyCloseWrite(t *testing.T) {
	t.Parallel()
	p, e := setup(t)
	c, pc := connect(t, p)
	roundTrip(t, c, "ab")
	pc.CloseWrite(Down)
	require.ErrorIs(t, readOne(t, c), io.EOF, "the client reads an orderly end")
	// The other direction still carries bytes to the upstream.
	_, err := c.Write([]byte("cd"))
	require.NoError(t, err)
	eventually(t, "the upstream to receive", func() bool { return e.received.Load() == 4 })
}

func TestFaultProxyDialFailureResets(t *testing.T) {
	t.Parallel()
	p, err := Start(func(ctx context.Context) (net.Conn, error) {
		return nil, errors.New("upstream down")
	})
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()
	requireResetOnConnect(t, p.Addr())
}

// requireResetOnConnect requires a new connection to addr to be reset: the
// RST may come before the dial returns or on the first read.
func requireResetOnConnect(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err == nil {
		defer c.Close()
		err = readOne(t, c)
	}
	require.ErrorIs(t, err, syscall.ECONNRESET)
}

func TestFaultProxyCloseEndsEverything(t *testing.T) {
	t.Parallel()
	p, _ := setup(t)
	c, pc := connect(t, p)
	pc.Set(Both, Fault{Blackhole: true})
	p2, _ := setup(t)
	c2, pc2 := connect(t, p2)
	pc2.Set(Up, Fault{Delay: time.Hour}) // a writer waiting out a delay
	_, err := c2.Write([]byte("x"))
	require.NoError(t, err)

	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "twice")
	require.NoError(t, p2.Close())
	<-pc.Done()
	<-pc2.Done()
	for _, conn := range []net.Conn{c, c2} {
		require.Error(t, readOne(t, conn))
	}
	// goleak in TestMain checks that no goroutine outlived Close.
}
