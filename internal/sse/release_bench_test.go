//go:build unix

package sse

import (
	"context"
	"io"
	"net"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkReleaseFew is the dispatcher's turn in the streams scenario
// (many streams, few events each): bursts of 5 frames, each on another of
// 200 hijacked Conns, 2 ms apart, released to the hub's workers (Release)
// or written by the releasing goroutine (ReleaseWrite). cpu-us/op is the
// process's CPU per frame, the clients' reads (io.Copy here) included;
// ns/op is mostly the pause.
//
//	go test -run XXX -bench ReleaseFew -benchtime 4000x -count 3 ./internal/sse/
func BenchmarkReleaseFew(b *testing.B) {
	for _, inline := range []bool{false, true} {
		name := "Release"
		if inline {
			name = "ReleaseWrite"
		}
		b.Run(name, func(b *testing.B) {
			h := NewHub(HubOptions{PeekInterval: time.Hour})
			require.NoError(b, h.Start(context.Background()))
			defer h.Stop()
			const n = 200
			conns := make([]*Conn, n)
			for i := range n {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(b, err)
				client, err := net.Dial("tcp", ln.Addr().String())
				require.NoError(b, err)
				server, err := ln.Accept()
				require.NoError(b, err)
				ln.Close()
				defer client.Close()
				go func() { _, _ = io.Copy(io.Discard, client) }()
				conns[i] = NewConn(httptest.NewRecorder(), Options{})
				conns[i].Attach(h, server, func(error) {})
			}
			frame := AppendEvent(nil, "1", "", string(make([]byte, 200)))
			time.Sleep(100 * time.Millisecond) // the attach writes are done
			began := processCPU(b)
			b.ResetTimer()
			for i := 0; i < b.N; i += 5 {
				for k := range 5 {
					c := conns[(i+k)%n]
					c.EnqueueHeld(frame, time.Time{})
					if inline {
						c.ReleaseWrite()
					} else {
						c.Release()
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
			b.StopTimer()
			time.Sleep(50 * time.Millisecond) // the workers' last writes
			b.ReportMetric(float64(processCPU(b)-began)/float64(b.N)/1e3, "cpu-us/op")
		})
	}
}

// processCPU is the process's user+system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
