package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/streamer-dev/streamer/cmd/streamer-bench/internal/client"
)

// burstFigures are idle-burst's measurements: the server's memory after
// BurstConns connections arrived at once (every client worker dialling all
// of its connections in parallel), as after a deploy, when every client
// reconnects.
type burstFigures struct {
	Conns         int     `json:"conns"`
	After5sKiB    int64   `json:"rss_5s_kib"` // RSS 5 s after the last connection was answered
	PerConn5sKiB  float64 `json:"rss_per_conn_5s_kib"`
	PeakKiB       int64   `json:"rss_peak_kib"`
	PerConnEndKiB float64 `json:"rss_per_conn_end_kib"` // at the end of IdleHold
	// Kernel memory queued on the server's sockets (ss -m, r + w) 5 s
	// after, per connection: idle sockets hold no buffers.
	KernelPerConnKiB float64 `json:"kernel_per_conn_kib"`
}

// burstMeasureAfter is when idle-burst measures RSS after the burst (issue
// #15: within 1.5x of the paced figure 5 s after the burst).
const burstMeasureAfter = 5 * time.Second

// idleBurst opens BurstConns connections at once and measures the server's
// RSS 5 s later and at the end of IdleHold.
func (b *bench) idleBurst(ctx context.Context, kind string) (result, error) {
	n := b.cfg.BurstConns
	r := result{Conns: n}
	f := &burstFigures{Conns: n}
	r.Burst = f
	s, err := b.begin(ctx, "idle-burst", kind)
	if err != nil {
		return r, err
	}
	defer s.end()
	ws, took, err := s.openFor(&r, "open errors", []client.ConnGroup{{Stream: "idle", Count: n}}, max(b.cfg.ConnsPerWorker, 1))
	r.OpenSeconds = took.Seconds()
	if err != nil {
		return r, err
	}
	a := s.mark(ctx)
	if err := sleep(ctx, burstMeasureAfter); err != nil {
		return r, err
	}
	at5, err := procMemory(s.t.pid)
	if err != nil {
		return r, err
	}
	_, port, _ := net.SplitHostPort(s.t.addr)
	if k, err := portSockets(ctx, port); err == nil && k.n > 0 {
		f.KernelPerConnKiB = float64(k.queued) / 1024 / float64(k.n)
	}
	if err := sleep(ctx, max(b.cfg.IdleHold-burstMeasureAfter, 0)); err != nil {
		return r, err
	}
	end, err := s.idleEnd(ctx, &r, ws, a)
	if err != nil {
		return r, err
	}
	r.memory(s.base, at5)
	f.After5sKiB, f.PeakKiB = at5.RSS, end.HWM
	f.PerConn5sKiB = r.RSSPerConnKiB
	if r.Held > 0 {
		f.PerConnEndKiB = float64(end.RSS-s.base.RSS) / float64(r.Held)
	}
	r.Notes = append(r.Notes, fmt.Sprintf("burst: %d connections opened at once in %.1fs; RSS %.1f KiB/conn %v after (peak %d KiB; kernel buffers %.2f KiB/conn), %.1f KiB/conn after %v",
		r.Held, r.OpenSeconds, f.PerConn5sKiB, burstMeasureAfter, f.PeakKiB, f.KernelPerConnKiB, f.PerConnEndKiB, b.cfg.IdleHold))
	return r, nil
}
