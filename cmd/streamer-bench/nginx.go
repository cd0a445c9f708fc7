package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/streamer-dev/streamer/cmd/streamer-bench/internal/client"
	"github.com/streamer-dev/streamer/internal/nginxconf"
)

// The nginx scenario: the fanout-fast workload (FastConns subscribers of
// one stream, FastRate events/s) first on one streamer instance with no
// proxy ("direct"), then through nginx running docs/nginx.conf with two
// instances as its upstream, in the same run. The row is the proxied leg:
// its server CPU is both instances' together, and the proxy's CPU is
// reported apart; printProxyTable sets the two legs side by side.

// errSkipped is returned by a scenario that cannot run here; the run goes
// on without its row.
var errSkipped = errors.New("skipped")

// proxyFigures are the nginx scenario's own measurements.
type proxyFigures struct {
	Instances int `json:"instances"`
	// InstanceConns are the SSE connections each instance held at the end
	// of the window (its streamer_sse_connections): how nginx spread them.
	InstanceConns         []int   `json:"instance_conns"`
	ProxyCPUPerDeliveryUs float64 `json:"proxy_cpu_per_delivery_us"`
	Direct                result  `json:"direct"` // the same workload on one instance, no proxy
}

// nginxPath returns the nginx to run: STREAMER_NGINX, else Debian's
// /usr/sbin/nginx, else nginx on PATH.
func nginxPath() (string, error) {
	if p := os.Getenv("STREAMER_NGINX"); p != "" {
		return exec.LookPath(p)
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return exec.LookPath("nginx")
}

func (b *bench) nginx(ctx context.Context) (result, error) {
	bin, err := nginxPath()
	if err != nil {
		return result{}, fmt.Errorf("%w: no nginx (make deps installs Debian's; or set STREAMER_NGINX): %v", errSkipped, err)
	}
	c := b.cfg
	groups := []client.ConnGroup{{Stream: "fast", Count: c.FastConns}}
	direct, err := b.deliver(ctx, "nginx-direct", "streamer", groups, c.FastRate, oneStream("fast"))
	if err != nil {
		return result{}, fmt.Errorf("direct leg: %w", err)
	}
	b.logf("   direct: %s", direct.summary())

	s, err := b.beginProxied(ctx, bin, "nginx", 2)
	if err != nil {
		return result{}, err
	}
	defer s.end()
	r, err := b.deliverOn(ctx, s.session, groups, c.FastRate, oneStream("fast"))
	r.Proxy = s.figures(r)
	r.Proxy.Direct = direct
	// deliverOn read the proxy's memory: the servers' is the figure.
	var base, end memory
	for i, u := range s.t.upstreams {
		m, _ := procMemory(u.pid)
		base.RSS, base.Anon = base.RSS+s.upBase[i].RSS, base.Anon+s.upBase[i].Anon
		end.RSS, end.Anon, end.HWM = end.RSS+m.RSS, end.Anon+m.Anon, end.HWM+m.HWM
	}
	r.memory(base, end)
	return r, err
}

// streamsProxied is the streams-nginx scenario: the streams workload
// through nginx in front of two instances. Each instance's dispatcher
// serves every tick (from its notifications, or by reading it), so this
// is where what a tick costs per instance shows in PostgreSQL's CPU.
func (b *bench) streamsProxied(ctx context.Context) (result, error) {
	bin, err := nginxPath()
	if err != nil {
		return result{}, fmt.Errorf("%w: no nginx (make deps installs Debian's; or set STREAMER_NGINX): %v", errSkipped, err)
	}
	s, err := b.beginProxied(ctx, bin, "streams-nginx", 2)
	if err != nil {
		return result{}, err
	}
	defer s.end()
	groups, pick := streamsOf(b.cfg.Streams)
	r, err := b.deliverOn(ctx, s.session, groups, b.cfg.StreamsRate, pick)
	r.Proxy = s.figures(r)
	return r, err
}

// figures are what a session behind nginx measured beside r: how nginx
// spread the connections over the instances, and its CPU per delivery.
func (s *proxiedSession) figures(r result) *proxyFigures {
	f := &proxyFigures{Instances: len(s.t.upstreams)}
	for _, u := range s.t.upstreams {
		f.InstanceConns = append(f.InstanceConns, int(scrapeMetric(u.addr, "streamer_sse_connections")))
	}
	if r.Deliveries > 0 {
		f.ProxyCPUPerDeliveryUs = r.ProxyCPU / float64(r.Deliveries) * 1e6
	}
	return f
}

// proxiedSession is a session whose target is nginx in front of
// instances, with the instances' memory before any client.
type proxiedSession struct {
	*session
	upBase  []memory
	stopUps func()
}

// end ends the session (clients, then nginx), then stops the instances.
func (s *proxiedSession) end() {
	s.session.end()
	s.stopUps()
}

// beginProxied starts n streamer instances and nginx in front of them, and
// returns a session whose target is nginx (its kind "streamer", so that it
// is published to by SQL) with the instances as its upstreams. Ending the
// session stops nginx, then the instances.
func (b *bench) beginProxied(ctx context.Context, bin, label string, n int) (_ *proxiedSession, err error) {
	var ups []*target
	stopAll := func() {
		for _, u := range ups {
			if err := u.stop(20 * time.Second); err != nil {
				b.logf("   %v", err)
			}
		}
	}
	defer func() {
		if err != nil {
			stopAll()
		}
	}()
	for i := range n {
		u, err := b.startTarget(ctx, "streamer", fmt.Sprintf("%s-%d", label, i+1))
		if err != nil {
			return nil, err
		}
		ups = append(ups, u)
	}
	px, err := b.startNginx(ctx, bin, label, ups)
	if err != nil {
		return nil, err
	}
	b.logf("   nginx ready in front of %d instances", n)
	ps := &proxiedSession{session: &session{b: b, label: label, t: px}, stopUps: stopAll}
	if err := sleep(ctx, b.cfg.Settle); err != nil {
		ps.end()
		return nil, err
	}
	for _, u := range ups {
		m, _ := procMemory(u.pid)
		ps.upBase = append(ps.upBase, m)
	}
	return ps, nil
}

// tickNotes returns the server's streamer_tick_notes_total by outcome, the
// upstreams' together when t is a proxy.
func (t *target) tickNotes() map[string]float64 {
	if len(t.upstreams) == 0 {
		return scrapeLabelled(t.addr, "streamer_tick_notes_total")
	}
	sum := map[string]float64{}
	for _, u := range t.upstreams {
		for o, n := range scrapeLabelled(u.addr, "streamer_tick_notes_total") {
			sum[o] += n
		}
	}
	return sum
}

// cpu returns the CPU seconds of the server under test (the upstreams'
// together when t is a proxy) and of the proxy (nginx's master and
// workers), if any.
func (t *target) cpu() (server, proxy float64) {
	if len(t.upstreams) == 0 {
		server, _ = procCPU(t.pid, false)
		return server, 0
	}
	for _, u := range t.upstreams {
		c, _ := procCPU(u.pid, false)
		server += c
	}
	proxy, _ = clusterCPU(t.pid)
	return server, proxy
}

// nginxSite returns docs/nginx.conf of the module the server is built
// from, with the upstreams and the listen address put in and the TLS
// server lines taken out (the benchmark speaks HTTP/1.1 in clear).
func (b *bench) nginxSite(ctx context.Context, ups []*target, addr string) (string, error) {
	list := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}")
	list.Dir = b.cfg.ServerSrc
	out, err := list.Output()
	if err != nil {
		return "", fmt.Errorf("find the module with docs/nginx.conf: %w", err)
	}
	path := filepath.Join(strings.TrimSpace(string(out)), "docs", "nginx.conf")
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var servers strings.Builder
	for _, u := range ups {
		fmt.Fprintf(&servers, "    server %s max_fails=1 fail_timeout=2s;\n", u.addr)
	}
	conf, err := nginxconf.Site(string(raw), [][2]string{
		{"    server 127.0.0.1:8081 max_fails=1 fail_timeout=2s;\n    server 127.0.0.1:8082 max_fails=1 fail_timeout=2s;\n", servers.String()},
		{"listen 80;", "listen " + addr + ";"},
		{"    listen 443 ssl http2;\n", ""},
		{"    ssl_certificate     /etc/ssl/certs/streamer.pem;\n", ""},
		{"    ssl_certificate_key /etc/ssl/private/streamer.key;\n", ""},
	})
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return conf, nil
}

// startNginx runs nginx on docs/nginx.conf (see nginxSite) inside an http
// block with Debian's defaults, everything it writes in a directory of the
// run's, and waits until it answers /readyz.
func (b *bench) startNginx(ctx context.Context, bin, label string, ups []*target) (*target, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	site, err := b.nginxSite(ctx, ups, addr)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(b.tmp, "nginx-")
	if err != nil {
		return nil, err
	}
	// Debian's worker settings (one worker per core); each connection
	// takes two descriptors, client and upstream.
	m := nginxconf.Main{Dir: dir, Workers: "auto", RlimitNofile: 20000, WorkerConnections: 10000, ErrorLogLevel: "warn"}
	cmd, err := m.Command(bin, site)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "output.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	ch, err := startChild("nginx", cmd)
	if err != nil {
		return nil, err
	}
	ch.log = filepath.Join(dir, "error.log")
	t := &target{child: ch, kind: "streamer", addr: addr, upstreams: ups}
	if err := t.waitReady(ctx, "http://"+addr+"/readyz"); err != nil {
		return nil, err
	}
	return t, nil
}

// printProxyTable sets the nginx scenario's two legs side by side: CPU per
// delivery of the servers (both instances together behind nginx) and of
// nginx, and the latency.
func printProxyTable(w io.Writer, results []result) {
	for i := range results {
		r := &results[i]
		f := r.Proxy
		if f == nil || r.Error != "" || r.Scenario != "nginx" {
			continue
		}
		d := &f.Direct
		fmt.Fprintf(w, "\nnginx scenario: %d subscribers of one stream, %.0f events/s published; the same run, one leg after the other.\n\n",
			r.Conns, r.PublishRate)
		fmt.Fprintln(w, "| leg | instances | streamer CPU/delivery µs | nginx CPU/delivery µs | deliveries/s | p50 ms | p99 ms | max ms | missing | dup |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
		fmt.Fprintf(w, "| direct | 1 | %s | – | %s | %s | %s | %s | %d | %d |\n",
			num(d.CPUPerDeliveryUs, "%.2f"), num(d.DeliveriesPerSec, "%.0f"), num(d.P50Ms, "%.2f"), num(d.P99Ms, "%.2f"), num(d.MaxMs, "%.1f"), d.Missing, d.Duplicates)
		fmt.Fprintf(w, "| via nginx | %d (conns %v) | %s | %s | %s | %s | %s | %s | %d | %d |\n",
			f.Instances, f.InstanceConns, num(r.CPUPerDeliveryUs, "%.2f"), num(f.ProxyCPUPerDeliveryUs, "%.2f"),
			num(r.DeliveriesPerSec, "%.0f"), num(r.P50Ms, "%.2f"), num(r.P99Ms, "%.2f"), num(r.MaxMs, "%.1f"), r.Missing, r.Duplicates)
		fmt.Fprintf(w, "| **via nginx / direct** | | %s | | %s | %s | %s | %s | | |\n",
			ratio(r.CPUPerDeliveryUs, d.CPUPerDeliveryUs), ratio(r.DeliveriesPerSec, d.DeliveriesPerSec),
			ratio(r.P50Ms, d.P50Ms), ratio(r.P99Ms, d.P99Ms), ratio(r.MaxMs, d.MaxMs))
	}
}
