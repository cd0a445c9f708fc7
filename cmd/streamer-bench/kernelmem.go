package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The kernel-memory scenarios (issue #15): what a client that stops reading
// costs in kernel socket buffers, with the server's default send-buffer cap
// (slow) and with the kernel's autotuning (slow-uncapped); and fanout-fast
// without the cap, beside fanout-fast with it, to show the cap costs no
// throughput.

// scenarioEnv is the extra environment of the streamer server in a
// scenario.
func scenarioEnv(label string) []string {
	queue := fmt.Sprintf("STREAMER_QUEUE_BYTES=%d", slowQueueBytes)
	switch label {
	case "slow":
		return []string{queue}
	case "slow-uncapped":
		return []string{queue, "STREAMER_SOCKET_SEND_BUFFER=0"}
	case "fanout-fast-uncapped":
		return []string{"STREAMER_SOCKET_SEND_BUFFER=0"}
	}
	return nil
}

// streamerOnly are the scenarios only the streamer server runs: the
// others keep no history to replay, run no instances behind nginx, have
// no send-buffer setting and no authorization.
var streamerOnly = map[string]bool{"replay": true, "nginx": true, "streams-nginx": true, "slow": true, "slow-uncapped": true, "fanout-fast-uncapped": true,
	"fanout-auth": true, "fanout-fast-auth": true}

// kernelFigures are the slow scenarios' measurements of the server's TCP
// sockets (ss -m on its port): bytes queued in the kernel per connection.
type kernelFigures struct {
	Conns int `json:"conns"`
	// While the clients are stalled but still connected.
	StalledSockets    int     `json:"stalled_sockets"`
	StalledPerConnKiB float64 `json:"stalled_per_conn_kib"`
	SendBufKiB        float64 `json:"sndbuf_kib"` // the sockets' SO_SNDBUF (ss tb), mean
	// After the server cut them as slow consumers: sockets left 10 s
	// later (orphans still holding data for clients that will not read
	// it), and what they hold.
	Cut              int     `json:"cut"`
	OrphanSockets    int     `json:"orphan_sockets"`
	OrphanPerConnKiB float64 `json:"orphan_per_conn_kib"`
	ServerRSSPerConn float64 `json:"server_rss_per_conn_kib"` // while stalled
}

// Sizes of the slow scenarios.
const (
	slowEventBytes = 2048
	slowQueueBytes = 2 << 20  // STREAMER_QUEUE_BYTES: cut after this much is queued
	slowClientRcv  = 16 << 10 // the clients' SO_RCVBUF: a small window, as a phone's
)

// slow opens SlowConns connections that never read, publishes until each
// has more queued than its send buffer can hold, measures the server's
// sockets, then publishes past STREAMER_QUEUE_BYTES so that the server
// cuts them, and measures the orphaned sockets.
func (b *bench) slow(ctx context.Context, label string) (result, error) {
	n := b.cfg.SlowConns
	r := result{Conns: n}
	k := &kernelFigures{Conns: n}
	r.Kernel = k
	s, err := b.begin(ctx, label, "streamer")
	if err != nil {
		return r, err
	}
	defer s.end()
	_, port, _ := net.SplitHostPort(s.t.addr)
	conns, err := openStalled(ctx, s.t.addr, n)
	defer func() {
		for _, c := range conns {
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	if err != nil {
		return r, err
	}
	r.Held = len(conns)
	if err := b.waitMetric(ctx, s.t.addr, "streamer_subscribers_live", float64(n)); err != nil {
		return r, err
	}
	publish := func(events int) error {
		_, err := b.pool.Exec(ctx, `INSERT INTO streamer.events (stream, data)
			SELECT 'slow', repeat('x', $2) FROM generate_series(1, $1)`, events, slowEventBytes)
		return err
	}
	// Half the queue bound per connection: more than any send buffer
	// holds, not enough to be cut.
	if err := publish(slowQueueBytes / 2 / slowEventBytes); err != nil {
		return r, err
	}
	if err := sleep(ctx, 2*b.cfg.Settle); err != nil {
		return r, err
	}
	stalled, err := portSockets(ctx, port)
	if err != nil {
		return r, err
	}
	end, _ := procMemory(s.t.pid)
	r.memory(s.base, end)
	k.StalledSockets = stalled.n
	k.StalledPerConnKiB = float64(stalled.queued) / 1024 / float64(n)
	if stalled.n > 0 {
		k.SendBufKiB = float64(stalled.sndbuf) / 1024 / float64(stalled.n)
	}
	// Past the queue bound plus the most an autotuned send buffer takes
	// (tcp_wmem's maximum, 4 MiB by default): every connection is cut.
	if err := publish((slowQueueBytes + 6<<20) / slowEventBytes); err != nil {
		return r, err
	}
	if err := b.waitMetric(ctx, s.t.addr, "streamer_slow_consumer_disconnects_total", float64(n)); err != nil {
		r.Notes = append(r.Notes, err.Error())
	}
	k.Cut = int(scrapeMetric(s.t.addr, "streamer_slow_consumer_disconnects_total"))
	// The cut connections are closed by the hub's workers and sweeper;
	// what is left after 10 s (an orphan draining, or still open) counts.
	var orphans sockets
	for deadline := time.Now().Add(10 * time.Second); ; {
		if orphans, err = portSockets(ctx, port); err != nil {
			return r, err
		}
		if orphans.n == 0 || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return r, err
		}
	}
	k.OrphanSockets = orphans.n
	k.OrphanPerConnKiB = float64(orphans.queued) / 1024 / float64(n)
	k.ServerRSSPerConn = r.RSSPerConnKiB
	r.Complete = true // nothing to deliver: the clients do not read
	r.Notes = append(r.Notes, fmt.Sprintf("kernel: %d stalled clients (SO_RCVBUF %d KiB): server sockets SO_SNDBUF %.0f KiB, %.1f KiB/conn queued in the kernel (server RSS %.1f KiB/conn); %d cut as slow consumers, %d orphaned sockets left holding %.1f KiB/conn",
		n, slowClientRcv>>10, k.SendBufKiB, k.StalledPerConnKiB, r.RSSPerConnKiB, k.Cut, k.OrphanSockets, k.OrphanPerConnKiB))
	return r, nil
}

// openStalled opens n SSE connections to stream "slow" that send their
// request and never read, with a small receive buffer.
func openStalled(ctx context.Context, addr string, n int) ([]net.Conn, error) {
	d := net.Dialer{Timeout: 30 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, slowClientRcv)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	var conns []net.Conn
	for range n {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return conns, fmt.Errorf("stalled client %d: %w", len(conns), err)
		}
		conns = append(conns, c)
		if _, err := fmt.Fprintf(c, "GET /events?stream=slow HTTP/1.1\r\nHost: %s\r\n\r\n", addr); err != nil {
			return conns, err
		}
	}
	return conns, nil
}

// sockets is what ss -m reports of some TCP sockets, in bytes.
type sockets struct {
	n      int
	queued int64 // receive (r) plus send (w) queues
	sndbuf int64 // tb, summed
}

// portSockets measures the TCP sockets whose local port is port (the
// server's), orphans included, less the listening one and TIME-WAIT.
func portSockets(ctx context.Context, port string) (sockets, error) {
	out, err := exec.CommandContext(ctx, "ss", "-tnmH", "state", "connected", "exclude", "time-wait", "( sport = :"+port+" )").Output()
	if err != nil {
		return sockets{}, fmt.Errorf("ss (iproute2) measures kernel socket memory: %w", err)
	}
	var s sockets
	for _, line := range strings.Split(string(out), "\n") {
		_, mem, ok := strings.Cut(line, "skmem:(")
		if !ok {
			continue
		}
		s.n++
		mem, _, _ = strings.Cut(mem, ")")
		for _, f := range strings.Split(mem, ",") {
			var p *int64
			switch {
			case strings.HasPrefix(f, "tb"):
				p, f = &s.sndbuf, f[2:]
			case strings.HasPrefix(f, "r") && !strings.HasPrefix(f, "rb"), strings.HasPrefix(f, "w"):
				p, f = &s.queued, f[1:]
			default:
				continue
			}
			v, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return s, fmt.Errorf("ss field %q: %w", f, err)
			}
			*p += v
		}
	}
	return s, nil
}

// scrapeLines calls line with each line of the server's /metrics until it
// returns false; false when the server does not answer.
func scrapeLines(addr string, line func(string) bool) bool {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && line(sc.Text()) {
	}
	return true
}

// scrapeMetric returns an unlabelled series of the server's /metrics, or -1.
func scrapeMetric(addr, name string) float64 {
	v := -1.0
	scrapeLines(addr, func(line string) bool {
		if s, ok := strings.CutPrefix(line, name+" "); ok {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				v = f
				return false
			}
		}
		return true
	})
	return v
}

// scrapeLabelled returns a series of the server's /metrics with one label,
// by the label's value; nil when the server does not answer.
func scrapeLabelled(addr, name string) map[string]float64 {
	out := map[string]float64{}
	answered := scrapeLines(addr, func(line string) bool {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			return true
		}
		labels, value, ok := strings.Cut(rest, "} ")
		_, label, found := strings.Cut(labels, `="`)
		if !ok || !found {
			return true
		}
		if f, err := strconv.ParseFloat(value, 64); err == nil {
			out[strings.TrimSuffix(label, `"`)] = f
		}
		return true
	})
	if !answered {
		return nil
	}
	return out
}

// waitMetric waits up to 60s for a series of the server to reach want.
func (b *bench) waitMetric(ctx context.Context, addr, name string, want float64) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		v := scrapeMetric(addr, name)
		if v >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is %v after 60s, want %v", name, v, want)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}
