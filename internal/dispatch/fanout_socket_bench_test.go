package dispatch

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
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

func (c *countingConn) EnqueueAt(frame []byte, committed time.Time) bool {
	c.queued += int64(len(frame))
	return c.Conn.EnqueueAt(frame, committed)
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFanoutAudienceSockets is the fan-out scenario with real
// connections: 200 sse.Conns on a hub, each over loopback TCP to a client
// that reads and discards, 50 events per dispatcher loop turn. It reports
// the process's CPU time (dispatcher, hub writers, the kernel's TCP work
// and the clients' reads) per delivered event, with no audiences
// ("anonymous") and with every connection authenticated and every second
// event restricted to a user and a team that half the connections are in
// ("authenticated"); docs/benchmarks.md compares the two. Events carry a
// commit time and the Conns report the delivery lag to a Prometheus
// histogram when they write, as in the server.
func BenchmarkFanoutAudienceSockets(b *testing.B) {
	const conns, pageEvents = 200, 50
	for _, authenticated := range []bool{false, true} {
		name := "anonymous"
		if authenticated {
			name = "authenticated"
		}
		b.Run(name, func(b *testing.B) {
			h := sse.NewHub(sse.HubOptions{Workers: 2, PeekInterval: time.Second})
			require.NoError(b, h.Start(context.Background()))
			defer h.Stop()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(b, err)
			defer ln.Close()

			met := metrics.New(metrics.Sources{})
			reg := registry.New[Subscriber]()
			d := New(Config{Registry: reg, Metrics: met})
			d.states = make(map[Subscriber]*subState)
			d.replaying = make(map[string]map[*subState]struct{})
			subs := make([]*countingConn, conns)
			received := make([]atomic.Int64, conns)
			readers := make(chan struct{}, conns)
			started := 0
			defer func() { // runs after every client is closed (deferred later)
				for range started {
					<-readers
				}
			}()
			for i := range conns {
				client, err := net.Dial("tcp", ln.Addr().String())
				require.NoError(b, err)
				server, err := ln.Accept()
				require.NoError(b, err)
				c := sse.NewConn(httptest.NewRecorder(), sse.Options{MaxQueueBytes: 64 << 20, Lag: met})
				c.Attach(h, server, func(error) {})
				started++
				go func() {
					defer func() { readers <- struct{}{} }()
					buf := make([]byte, 64<<10)
					for {
						n, err := client.Read(buf)
						received[i].Add(int64(n))
						if err != nil {
							return
						}
					}
				}()
				defer func() { client.Close(); c.Close(nil) }()
				subs[i] = &countingConn{Conn: c}
				var keys []string
				if authenticated {
					keys = []string{fmt.Sprint("user:", i), fmt.Sprint("team:", i%2), "org:1"}
				}
				d.states[subs[i]] = &subState{sub: subs[i], aud: newAudience(keys)}
				reg.Add(subs[i], []string{"s"})
			}
			restricted := []string{"user:3", "team:1"}
			data := fmt.Sprintf(`{"order":%d,"status":"paid","note":"a typical small payload"}`, 42)
			delivered := 0
			committed := time.Now()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for i := range b.N {
				ev := event{pos: cursor.Position{Seq: int64(i + 1), ID: 1}, stream: "s", data: data, committed: committed}
				if authenticated && i%2 == 0 {
					ev.audience = restricted
				}
				d.fanout(&ev)
				if i%pageEvents == pageEvents-1 || i == b.N-1 {
					delivered += d.queued
					d.flushDelivered()
					d.flushSkipped()
				}
			}
			for i, s := range subs { // until every client has read everything
				for received[i].Load() < s.queued {
					time.Sleep(time.Millisecond)
				}
			}
			cpu := cpuTime(b) - cpu0
			b.StopTimer()
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(max(delivered, 1)), "cpu-ns/delivery")
			b.ReportMetric(float64(delivered)/float64(b.N), "deliveries/event")
		})
	}
}
