package sse

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func BenchmarkAppendEvent(b *testing.B) {
	cases := []struct {
		name string
		data string
	}{
		{name: "small JSON", data: `{"order":42,"status":"paid","total":"19.99"}`},
		{name: "16 lines 1KiB", data: strings.Repeat(strings.Repeat("x", 63)+"\n", 16)},
		{name: "CRLF 16 lines 1KiB", data: strings.Repeat(strings.Repeat("x", 62)+"\r\n", 16)},
		{name: "one line 64KiB", data: strings.Repeat("x", 64<<10)},
		{name: "one line 1MiB", data: strings.Repeat("x", 1<<20)},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			dst := AppendEvent(nil, "0000000000000042-0001", "order.paid", tc.data)
			b.SetBytes(int64(len(tc.data)))
			b.ReportAllocs()
			for b.Loop() {
				dst = AppendEvent(dst[:0], "0000000000000042-0001", "order.paid", tc.data)
			}
		})
	}
}

// BenchmarkConnEnqueue measures Enqueue with Run draining into a writer
// that discards: the cost a dispatcher pays per connection per event.
func BenchmarkConnEnqueue(b *testing.B) {
	frame := AppendEvent(nil, "0000000000000042-0001", "order.paid", `{"order":42,"status":"paid"}`)

	run := func(b *testing.B, enqueue func(c *Conn)) {
		c := NewConn(&discardWriter{}, Options{MaxQueueBytes: 1 << 30})
		ran := make(chan error, 1)
		go func() { ran <- c.Run(context.Background()) }()
		b.ReportAllocs()
		enqueue(c)
		b.StopTimer()
		c.Close(nil)
		require.ErrorIs(b, <-ran, ErrClosed)
	}

	b.Run("serial", func(b *testing.B) {
		run(b, func(c *Conn) {
			for b.Loop() {
				if !c.Enqueue(frame) {
					b.Fatal("refused")
				}
			}
		})
	})
	// fanout enqueues each frame into 1000 conns, each with its own Run, as
	// a dispatcher does; ns/enqueue is the cost per connection.
	b.Run("fanout 1000", func(b *testing.B) {
		const n = 1000
		conns := make([]*Conn, n)
		ran := make(chan error, n)
		for i := range conns {
			conns[i] = NewConn(&discardWriter{}, Options{MaxQueueBytes: 1 << 30})
			go func() { ran <- conns[i].Run(context.Background()) }()
		}
		b.ReportAllocs()
		for b.Loop() {
			for _, c := range conns {
				if !c.Enqueue(frame) {
					b.Fatal("refused")
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/enqueue")
		for _, c := range conns {
			c.Close(nil)
		}
		for range n {
			require.ErrorIs(b, <-ran, ErrClosed)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		run(b, func(c *Conn) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if !c.Enqueue(frame) {
						b.Error("refused")
						return
					}
				}
			})
		})
	})
}
