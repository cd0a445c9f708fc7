package dispatch

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/metrics"
	"github.com/streamer-dev/streamer/internal/registry"
	"github.com/streamer-dev/streamer/internal/sse"
)

// countingConn is an sse.Conn that counts the bytes queued on it (by the
// dispatcher goroutine alone, so a plain integer).
type countingConn struct {
	*sse.Conn
	queued int64
}

func (c *countingConn) Enqueue(frame []byte) bool {
	c.queued += int64(len(frame))
	return c.Conn.Enqueue(frame)
}

func (c *countingConn) EnqueueHeld(frame []byte, committed time.Time) bool {
	c.queued += int64(len(frame))
	return c.Conn.EnqueueHeld(frame, committed)
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fanoutRig is one fan-out scenario of BenchmarkFanoutAudienceSockets: a
// dispatcher with conns live subscribers on stream "s", each an sse.Conn on
// a hub, over loopback TCP to a client in a child process (TestFanoutSink)
// that reads and discards, so that the clients' CPU is not the process's.
type fanoutRig struct {
	d         *Dispatcher
	subs      []*countingConn
	sinkIn    io.Writer     // the total bytes to wait for, a line at a time
	sinkOut   *bufio.Reader // "sink-ok" once they have arrived
	mode      rigMode
	seq       int64
	lastIDs   time.Time // the last id-only frames (IDFrameDelay emulated)
	delivered int
	cpu       time.Duration
	writes    int64 // write system calls
}

// sinkEnv names the address a TestFanoutSink child connects to.
const sinkEnv = "STREAMER_FANOUT_SINK"

// rigMode is what a fanoutRig's connections and events are.
type rigMode int

const (
	// anonymous: no audiences; every event reaches every connection.
	anonymous rigMode = iota
	// authenticated: every connection holds keys (its sub, one of two
	// teams, an organisation) and every second event is restricted to a
	// user and a team that half the connections are in.
	authenticated
	// split: no audiences, but every second event is on a second stream
	// that the same half of the connections subscribe to: the deliveries
	// of authenticated without the audience test.
	split
)

// newFanoutRig starts a rig of conns connections.
func newFanoutRig(b *testing.B, conns int, mode rigMode) *fanoutRig {
	h := sse.NewHub(sse.HubOptions{Workers: 2, PeekInterval: time.Second})
	require.NoError(b, h.Start(context.Background()))
	b.Cleanup(h.Stop)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	b.Cleanup(func() { ln.Close() })

	sink := exec.Command(os.Args[0], "-test.run=^TestFanoutSink$", "-test.count=1")
	sink.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d", sinkEnv, ln.Addr(), conns))
	sink.Stderr = os.Stderr
	in, err := sink.StdinPipe()
	require.NoError(b, err)
	out, err := sink.StdoutPipe()
	require.NoError(b, err)
	require.NoError(b, sink.Start())
	b.Cleanup(func() { in.Close(); _ = sink.Wait() }) // after the conns are closed (registered later)

	met := metrics.New(metrics.Sources{})
	reg := registry.New[Subscriber]()
	r := &fanoutRig{d: benchDispatcher(Config{Registry: reg, Metrics: met}), subs: make([]*countingConn, conns),
		sinkIn: in, sinkOut: bufio.NewReader(out), mode: mode, lastIDs: time.Now()}
	for i := range conns {
		server, err := ln.Accept()
		require.NoError(b, err)
		c := sse.NewConn(httptest.NewRecorder(), sse.Options{MaxQueueBytes: 64 << 20, Lag: met})
		c.Attach(h, server, func(error) {})
		b.Cleanup(func() { c.Close(nil) })
		r.subs[i] = &countingConn{Conn: c}
		var keys []string
		streams := []string{"s"}
		switch {
		case mode == authenticated:
			keys = []string{fmt.Sprint("user:", i), fmt.Sprint("team:", i%2), "org:1"}
		case mode == split && i%2 == 1:
			streams = append(streams, "r")
		}
		r.d.states[r.subs[i]] = &subState{sub: r.subs[i], aud: newAudience(keys)}
		reg.Add(r.subs[i], streams)
	}
	return r
}

// TestFanoutSink is BenchmarkFanoutAudienceSockets' client process (it
// skips unless started by it): it opens the connections, reads and discards
// everything, and for each total byte count it reads on stdin, answers
// "sink-ok" once its connections together have received that much.
func TestFanoutSink(t *testing.T) {
	target, ok := os.LookupEnv(sinkEnv)
	if !ok {
		t.Skip("the client process of BenchmarkFanoutAudienceSockets")
	}
	addr, n, ok := strings.Cut(target, ",")
	require.True(t, ok, target)
	conns, err := strconv.Atoi(n)
	require.NoError(t, err)
	var received atomic.Int64
	var readers sync.WaitGroup
	defer readers.Wait()
	for range conns {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		readers.Go(func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				received.Add(int64(n))
				if err != nil {
					return
				}
			}
		})
	}
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		total, err := strconv.ParseInt(lines.Text(), 10, 64)
		require.NoError(t, err)
		for received.Load() < total {
			time.Sleep(time.Millisecond)
		}
		fmt.Println("sink-ok")
	}
}

// run fans n events out in loop turns of pageEvents, every second event
// (each turn ending with one) restricted or on the second stream as r.mode
// says, and adds the process's CPU time meanwhile to r.cpu. After each turn
// it waits until the clients have read everything, as the writers catch up
// while the dispatcher reads the next page. Id-only frames go out once a
// second, as the dispatcher's IDFrameDelay timer would send them (the
// server passes its heartbeat, 15 s by default).
func (r *fanoutRig) run(b *testing.B, n, pageEvents int, data string) {
	restricted := []string{"user:3", "team:1"}
	committed := time.Now()
	cpu0, w0 := cpuTime(b), writeCalls(b)
	for i := range n {
		r.seq++
		ev := event{pos: cursor.Position{Seq: r.seq, ID: 1}, stream: "s", data: data, committed: committed}
		switch {
		case r.mode == authenticated && i%2 == 1:
			ev.audience = restricted
		case r.mode == split && i%2 == 1:
			ev.stream = "r"
		}
		r.d.fanout(&ev)
		if i%pageEvents == pageEvents-1 || i == n-1 { // the end of a loop turn
			r.delivered += r.d.queued
			r.d.endTurn()
			if len(r.d.skipped) > 0 && time.Since(r.lastIDs) >= time.Second {
				r.d.flushSkipped()
				r.lastIDs = time.Now()
			}
			r.drain(b)
		}
	}
	r.cpu += cpuTime(b) - cpu0
	r.writes += writeCalls(b) - w0
}

// drain waits until the clients have read everything queued so far.
func (r *fanoutRig) drain(b *testing.B) {
	var total int64
	for _, s := range r.subs {
		total += s.queued
	}
	_, err := fmt.Fprintln(r.sinkIn, total)
	require.NoError(b, err)
	for {
		line, err := r.sinkOut.ReadString('\n')
		require.NoError(b, err)
		if line == "sink-ok\n" {
			return
		}
	}
}

func (r *fanoutRig) cpuPerDelivery() float64 {
	return float64(r.cpu.Nanoseconds()) / float64(max(r.delivered, 1))
}

// writeCalls is the process's write system calls so far (syscw in
// /proc/self/io), or 0 where there is no such file.
func writeCalls(b *testing.B) int64 {
	io, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(io)) {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			require.NoError(b, err)
			return n
		}
	}
	return 0
}

// BenchmarkFanoutAudienceSockets is the fan-out scenario with real
// connections: 200 sse.Conns on a hub, each over loopback TCP to a client
// in a child process that reads and discards, the writers catching up
// between dispatcher loop turns. Events carry a commit time and the Conns
// report the delivery lag to a Prometheus histogram when they write, as in
// the server. It measures the server's CPU time (this process: dispatcher,
// hub writers, the kernel's TCP work on the sending side; not the
// clients') per delivered event in three rigs (see rigMode): anonymous,
// authenticated with half the events restricted, and split, which has
// authenticated's deliveries without audiences. They run in turn, 1,000
// events at a time, set up side by side, so that the machine's load changes
// alike for all; b.N events each. It reports each figure and the ratios
// auth/anon (the acceptance figure, docs/benchmarks.md) and
// auth/split (what the audience test itself costs, with the same
// deliveries per write).
//
// Two shapes: turn=1, one event per loop turn, as the dispatcher fans out
// events that arrive one at a time (make bench-load's fanout scenarios: a
// connection that may not see an event is not written to); and turn=50, a
// burst read as pages of 50, where every connection that sees any of a
// turn's events pays one write for the turn, however few it sees.
func BenchmarkFanoutAudienceSockets(b *testing.B) {
	for _, pageEvents := range []int{1, 50} {
		b.Run(fmt.Sprint("turn=", pageEvents), func(b *testing.B) { benchFanoutAudienceSockets(b, pageEvents) })
	}
}

func benchFanoutAudienceSockets(b *testing.B, pageEvents int) {
	const conns, chunk = 200, 1000
	data := fmt.Sprintf(`{"order":%d,"status":"paid","note":"a typical small payload"}`, 42)
	names := map[rigMode]string{anonymous: "anon", authenticated: "auth", split: "split"}
	rigs := make(map[rigMode]*fanoutRig)
	ctxs := make(map[rigMode]context.Context)
	for mode, name := range names {
		// Profile labels (rig=anon, ...) tell the rigs apart in a
		// -cpuprofile, hub writers included.
		ctxs[mode] = pprof.WithLabels(context.Background(), pprof.Labels("rig", name))
		pprof.Do(ctxs[mode], pprof.Labels(), func(context.Context) { rigs[mode] = newFanoutRig(b, conns, mode) })
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		n := min(chunk, b.N-done)
		for _, mode := range []rigMode{anonymous, authenticated, split} {
			pprof.Do(ctxs[mode], pprof.Labels(), func(context.Context) { rigs[mode].run(b, n, pageEvents, data) })
		}
	}
	b.StopTimer()
	for mode, name := range names {
		r := rigs[mode]
		b.ReportMetric(r.cpuPerDelivery(), name+"-cpu-ns/delivery")
		b.ReportMetric(float64(r.delivered)/float64(max(r.writes, 1)), name+"-deliveries/write")
	}
	b.ReportMetric(float64(rigs[authenticated].delivered)/float64(b.N), "auth-deliveries/event")
	b.ReportMetric(rigs[authenticated].cpuPerDelivery()/rigs[anonymous].cpuPerDelivery(), "auth/anon")
	b.ReportMetric(rigs[authenticated].cpuPerDelivery()/rigs[split].cpuPerDelivery(), "auth/split")
}
