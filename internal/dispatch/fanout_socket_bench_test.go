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
	d             *Dispatcher
	subs          []*countingConn
	sinkIn        io.Writer     // the total bytes to wait for, a line at a time
	sinkOut       *bufio.Reader // "sink-ok" once they have arrived
	authenticated bool
	seq           int64
	lastIDs       time.Time // the last id-only frames (IDFrameDelay emulated)
	delivered     int
	cpu           time.Duration
	writes        int64 // write system calls
}

// sinkEnv names the address a TestFanoutSink child connects to.
const sinkEnv = "STREAMER_FANOUT_SINK"

// newFanoutRig starts a rig; with authenticated, every connection holds
// keys: its sub, one of two teams, and an organisation.
func newFanoutRig(b *testing.B, conns int, authenticated bool) *fanoutRig {
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

	reg := registry.New[Subscriber]()
	r := &fanoutRig{d: benchDispatcher(Config{Registry: reg}), subs: make([]*countingConn, conns),
		sinkIn: in, sinkOut: bufio.NewReader(out), authenticated: authenticated, lastIDs: time.Now()}
	for i := range conns {
		server, err := ln.Accept()
		require.NoError(b, err)
		c := sse.NewConn(httptest.NewRecorder(), sse.Options{MaxQueueBytes: 64 << 20})
		c.Attach(h, server, func(error) {})
		b.Cleanup(func() { c.Close(nil) })
		r.subs[i] = &countingConn{Conn: c}
		var keys []string
		if authenticated {
			keys = []string{fmt.Sprint("user:", i), fmt.Sprint("team:", i%2), "org:1"}
		}
		r.d.states[r.subs[i]] = &subState{sub: r.subs[i], aud: newAudience(keys)}
		reg.Add(r.subs[i], []string{"s"})
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
// restricted (when authenticated) to a user and a team that half the
// connections are in, each turn ending with a restricted one; waits until
// every client has read everything; and adds the process's CPU time
// meanwhile to r.cpu. Id-only frames go out once a second, as the
// dispatcher's IDFrameDelay timer would send them (the server's default is
// the 15 s heartbeat).
func (r *fanoutRig) run(b *testing.B, n, pageEvents int, data string) {
	restricted := []string{"user:3", "team:1"}
	cpu0, w0 := cpuTime(b), writeCalls(b)
	for i := range n {
		r.seq++
		ev := event{pos: cursor.Position{Seq: r.seq, ID: 1}, stream: "s", data: data}
		if r.authenticated && i%2 == 1 {
			ev.audience = restricted
		}
		r.d.fanout(&ev)
		if i%pageEvents == pageEvents-1 || i == n-1 { // the end of a loop turn
			r.delivered += r.d.queued
			r.d.queued = 0
			if len(r.d.skipped) > 0 && time.Since(r.lastIDs) >= time.Second {
				r.d.flushSkipped()
				r.lastIDs = time.Now()
			}
		}
	}
	var total int64
	for _, s := range r.subs {
		total += s.queued
	}
	_, err := fmt.Fprintln(r.sinkIn, total) // wait until the clients have read everything
	require.NoError(b, err)
	for {
		line, err := r.sinkOut.ReadString('\n')
		require.NoError(b, err)
		if line == "sink-ok\n" {
			break
		}
	}
	r.cpu += cpuTime(b) - cpu0
	r.writes += writeCalls(b) - w0
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
// in a child process that reads and discards, 50 events per dispatcher loop
// turn. It measures the server's CPU time (this process: dispatcher, hub
// writers, the kernel's TCP work on the sending side; not the clients')
// per delivered event with no audiences ("anonymous") and with every
// connection authenticated and every second event restricted to a user and
// a team that half the connections are in ("authenticated"). The two run
// alternately, 1,000 events at a time, on two rigs set up side by side, so
// that the machine's load changes alike for both; b.N events each. It
// reports both figures and their ratio (authenticated/anonymous), the
// figure docs/benchmarks.md records.
func BenchmarkFanoutAudienceSockets(b *testing.B) {
	const conns, pageEvents, chunk = 200, 50, 1000
	data := fmt.Sprintf(`{"order":%d,"status":"paid","note":"a typical small payload"}`, 42)
	// Profile labels (rig=anonymous, rig=authenticated) tell the two
	// apart in a -cpuprofile, hub writers and clients included.
	anonCtx := pprof.WithLabels(context.Background(), pprof.Labels("rig", "anonymous"))
	authCtx := pprof.WithLabels(context.Background(), pprof.Labels("rig", "authenticated"))
	var anon, auth *fanoutRig
	pprof.Do(anonCtx, pprof.Labels(), func(context.Context) { anon = newFanoutRig(b, conns, false) })
	pprof.Do(authCtx, pprof.Labels(), func(context.Context) { auth = newFanoutRig(b, conns, true) })
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		n := min(chunk, b.N-done)
		pprof.Do(anonCtx, pprof.Labels(), func(context.Context) { anon.run(b, n, pageEvents, data) })
		pprof.Do(authCtx, pprof.Labels(), func(context.Context) { auth.run(b, n, pageEvents, data) })
	}
	b.StopTimer()
	b.ReportMetric(anon.cpuPerDelivery(), "anon-cpu-ns/delivery")
	b.ReportMetric(auth.cpuPerDelivery(), "auth-cpu-ns/delivery")
	b.ReportMetric(auth.cpuPerDelivery()/anon.cpuPerDelivery(), "auth/anon")
	b.ReportMetric(float64(auth.delivered)/float64(b.N), "auth-deliveries/event")
	b.ReportMetric(float64(anon.delivered)/float64(max(anon.writes, 1)), "anon-deliveries/write")
	b.ReportMetric(float64(auth.delivered)/float64(max(auth.writes, 1)), "auth-deliveries/write")
}
