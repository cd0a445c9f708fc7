package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// nginxEnv is what the nginx scenarios share: the nginx binary, the server
// binary and two instances on one database, with heartbeats (1 s) shorter
// than the proxy's read timeout (3 s).
type nginxEnv struct {
	nginx, bin string
	c          *instances
}

// upstreams returns the two instances' addresses for startNginx.
func (e *nginxEnv) upstreams() [2]string { return [2]string{e.c.nodes[0].addr, e.c.nodes[1].addr} }

// TestNginx runs docs/nginx.conf in Debian's nginx, started by the test,
// in front of two instances (issue #13, item 2): events arrive unbuffered
// with nginx's default proxy_buffering on, idle connections outlive
// proxy_read_timeout, Last-Event-ID passes through, a killed upstream's
// clients resume exactly through the other, gzip does not hold events
// back, HTTP/2 carries several streams on one connection, and
// X-Forwarded-For is believed only from trusted proxies.
func TestNginx(t *testing.T) {
	t.Parallel() // with the other multi-process tests, after the sequential ones
	nginx := requireNginx(t)
	bin := buildServer(t, t.TempDir())
	heartbeat := withEnv("STREAMER_HEARTBEAT", "1s")
	shared := &nginxEnv{nginx: nginx, bin: bin, c: startInstances(t, bin, 2, heartbeat)}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, e *nginxEnv)
	}{
		{"latency beside direct", testNginxLatency},
		{"idle for 10 s", testNginxIdle},
		{"Last-Event-ID passes through", testNginxLastEventID},
		{"gzip", testNginxGzip},
		{"HTTP/2 streams on one connection", testNginxHTTP2},
		{"rolling restart of the upstreams", func(t *testing.T, e *nginxEnv) {
			testNginxRolling(t, &nginxEnv{nginx: nginx, bin: bin, c: startInstances(t, bin, 2, heartbeat)})
		}},
		{"kill -9 an upstream", func(t *testing.T, e *nginxEnv) {
			testNginxKillUpstream(t, &nginxEnv{nginx: nginx, bin: bin, c: startInstances(t, bin, 2, heartbeat)})
		}},
		{"X-Forwarded-For", func(t *testing.T, _ *nginxEnv) { testNginxForwardedFor(t, nginx, bin) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, shared)
		})
	}
}

// Publish-to-receive latency through nginx beside direct, in one run, on
// the same events: logged, not asserted (timing goals belong in
// benchmarks). The test asserts that both clients receive every event.
func testNginxLatency(t *testing.T, e *nginxEnv) {
	p := startNginx(t, e.nginx, e.upstreams(), nginxOptions{})
	d := e.c.nodes[0]
	from := d.head(t)
	direct := follow(t, "direct", []string{d.url}, []string{"lat"}, from)
	proxied := follow(t, "nginx", []string{p.url}, []string{"lat"}, from)
	d.publish(t, "lat", "", "warm-up")
	want := []string{"warm-up"}
	waitFor(t, shortWait, "the warm-up event at both clients", func() bool { return direct.count() == 1 && proxied.count() == 1 })

	var lDirect, lProxied []time.Duration
	for i := range 100 {
		data := fmt.Sprintf("lat-%d", i)
		began := time.Now()
		d.publish(t, "lat", "", data)
		want = append(want, data)
		var at [2]time.Time
		waitFor(t, shortWait, data+" at both clients", func() bool {
			var ok1, ok2 bool
			at[0], ok1 = direct.arrival(data)
			at[1], ok2 = proxied.arrival(data)
			return ok1 && ok2
		})
		lDirect = append(lDirect, at[0].Sub(began))
		lProxied = append(lProxied, at[1].Sub(began))
	}
	requireExactly(t, direct, want)
	requireExactly(t, proxied, want)
	t.Logf("publish (SQL) to receive, 100 events one at a time: direct %s; through nginx %s",
		latencySummary(lDirect), latencySummary(lProxied))
}

func latencySummary(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(f float64) time.Duration {
		return s[min(int(f*float64(len(s))), len(s)-1)].Round(10 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %v p90 %v p99 %v max %v", q(0.5), q(0.9), q(0.99), s[len(s)-1].Round(10*time.Microsecond))
}

// stayConnected requires each follower to keep its one connection for
// the whole of d.
func stayConnected(t *testing.T, d time.Duration, fs ...*follower) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		for _, f := range fs {
			require.Len(t, f.connections(), 1, "the connection ended while idle: %s", f)
			f.mu.Lock()
			ends := len(f.failures)
			f.mu.Unlock()
			require.Zero(t, ends, "the connection ended while idle: %s", f)
		}
		time.Sleep(100 * time.Millisecond) // the idle period under test, sampled
	}
}

// A connection idle for 10 s, over three times proxy_read_timeout (3 s),
// survives on heartbeats (1 s), over HTTP/1.1 and over HTTP/2.
func testNginxIdle(t *testing.T, e *nginxEnv) {
	p := startNginx(t, e.nginx, e.upstreams(), nginxOptions{})
	d := e.c.nodes[0]
	from := d.head(t)
	h1 := follow(t, "http/1.1", []string{p.url}, []string{"idle"}, from)
	h2 := follow(t, "h2", []string{p.tlsURL}, []string{"idle"}, from, withClient(p.client(true)))
	d.publish(t, "idle", "", "before")
	requireExactly(t, h1, []string{"before"})
	requireExactly(t, h2, []string{"before"})

	stayConnected(t, 10*time.Second, h1, h2)

	d.publish(t, "idle", "", "after")
	for _, f := range []*follower{h1, h2} {
		requireExactly(t, f, []string{"before", "after"})
		require.Len(t, f.connections(), 1, "%s", f)
	}
	require.Equal(t, []string{"HTTP/1.1"}, h1.protocols())
	require.Equal(t, []string{"HTTP/2.0"}, h2.protocols())
}

// Last-Event-ID sent to nginx reaches the instance, which resumes exactly
// after it; publishing goes through nginx too.
func testNginxLastEventID(t *testing.T, e *nginxEnv) {
	p := startNginx(t, e.nginx, e.upstreams(), nginxOptions{})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	publish := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			data := fmt.Sprintf("%s-%d", prefix, i)
			status, ids, err := publishHTTP(client, p.url, event{Stream: "resume", Data: data})
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, status)
			require.Len(t, ids, 1)
			out = append(out, data)
		}
		return out
	}
	from := e.c.nodes[0].head(t)
	first := follow(t, "first", []string{p.url}, []string{"resume"}, from)
	published := publish("a", 10)
	requireExactly(t, first, published)

	// Several resumes, each landing on either instance.
	ids := first.ids()
	for _, k := range []int{0, 3, 8, 9} {
		f := follow(t, fmt.Sprintf("from event %d", k), []string{p.url}, []string{"resume"}, ids[k])
		requireExactly(t, f, published[k+1:])
		f.close()
	}
	resumed := follow(t, "resumed", []string{p.url}, []string{"resume"}, ids[4])
	live := publish("b", 3)
	requireExactly(t, resumed, append(slices.Clone(published[5:]), live...))
	requireExactly(t, first, append(published, live...))
}

// With gzip on for text/event-stream (Debian's nginx.conf has `gzip on`,
// which alone compresses text/html only), nginx compresses the stream
// and still passes each event on as it comes: every event is received
// before the next is published.
func testNginxGzip(t *testing.T, e *nginxEnv) {
	p := startNginx(t, e.nginx, e.upstreams(), nginxOptions{httpExtra: "gzip_types text/event-stream;"})
	d := e.c.nodes[0]
	from := d.head(t)
	plain := follow(t, "identity", []string{p.url}, []string{"gz"}, from)
	zipped := follow(t, "gzip", []string{p.url}, []string{"gz"}, from, withHeader("Accept-Encoding", "gzip"))
	var want []string
	for i := range 10 {
		data := fmt.Sprintf("gz-%d", i)
		d.publish(t, "gz", "", data)
		want = append(want, data)
		requireExactly(t, zipped, want)
	}
	requireExactly(t, plain, want)
	require.Equal(t, []string{"HTTP/1.1 gzip"}, zipped.protocols(), "nginx compressed the stream")
	require.Equal(t, []string{"HTTP/1.1"}, plain.protocols())
}

// countingDialer counts the TCP connections a client makes.
type countingDialer struct {
	net.Dialer
	n atomic.Int32
}

func (d *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.n.Add(1)
	return d.Dialer.DialContext(ctx, network, addr)
}

// Three streams over HTTP/2 to nginx (TLS with a certificate made by the
// test) share one TCP connection, and each receives exactly its events.
func testNginxHTTP2(t *testing.T, e *nginxEnv) {
	p := startNginx(t, e.nginx, e.upstreams(), nginxOptions{})
	client := p.client(true)
	dialer := &countingDialer{}
	client.Transport.(*http.Transport).DialContext = dialer.DialContext
	d := e.c.nodes[0]
	from := d.head(t)
	streams := []string{"h2-a", "h2-b", "h2-c"}
	var fs []*follower
	for i, s := range streams {
		fs = append(fs, follow(t, s, []string{p.tlsURL}, []string{s}, from, withClient(client)))
		if i == 0 {
			// The later requests find the first one's connection.
			waitFor(t, shortWait, "the first stream", func() bool { return len(fs[0].connections()) == 1 })
		}
	}
	want := map[string][]string{}
	for i := range 5 {
		for _, s := range streams {
			data := fmt.Sprintf("%s-%d", s, i)
			d.publish(t, s, "", data)
			want[s] = append(want[s], data)
		}
	}
	for i, f := range fs {
		requireExactly(t, f, want[streams[i]])
		require.Equal(t, []string{"HTTP/2.0"}, f.protocols(), "%s", f)
	}
	require.EqualValues(t, 1, dialer.n.Load(), "one TCP connection to nginx for all three streams")
}

// An upstream killed with SIGKILL under load: its clients reconnect
// through nginx, which sends them to the other instance, with their
// Last-Event-ID, and miss nothing.
func testNginxKillUpstream(t *testing.T, e *nginxEnv) {
	p := startNginx(t, e.nginx, e.upstreams(), nginxOptions{})
	c := e.c
	from := c.nodes[1].head(t)
	streams := []string{"k0", "k1"}
	var fs []*follower
	for i := range 6 {
		s := streams[i%2]
		fs = append(fs, follow(t, fmt.Sprintf("%s#%d", s, i), []string{p.url}, []string{s}, from))
	}
	var stops []func() []string
	for _, s := range streams {
		_, stop := c.nodes[1].keepPublishing(t, s, s+"-", 5*time.Millisecond)
		stops = append(stops, stop)
	}
	waitAll := func(n int) {
		for _, f := range fs {
			waitFor(t, longWait, fmt.Sprintf("%d events at %s", n, f), func() bool { return f.count() >= n })
		}
	}
	waitAll(20)
	c.nodes[0].kill()
	n := fs[0].count()
	waitAll(n + 50)

	want := map[string][]string{}
	for i, s := range streams {
		want[s] = append(stops[i](), "end")
		c.nodes[1].publish(t, s, "", "end")
	}
	moved := 0
	for i, f := range fs {
		requireExactly(t, f, want[streams[i%2]])
		if len(f.connections()) > 1 {
			moved++
		}
	}
	require.Positive(t, moved, "some client was on the killed instance and reconnected")
	t.Logf("%d of %d clients reconnected through nginx; %d events per stream", moved, len(fs), len(want["k0"]))
}

// A rolling restart behind nginx, one instance at a time, each ready and
// back in nginx's rotation before the next stops: every client reconnects through nginx with its
// Last-Event-ID, misses nothing, and is never refused (a browser's
// EventSource gives up for good on any answer but 200).
func testNginxRolling(t *testing.T, e *nginxEnv) {
	p := startNginx(t, e.nginx, e.upstreams(), nginxOptions{})
	c := e.c
	from := c.nodes[0].head(t)
	var fs []*follower
	for i := range 6 {
		fs = append(fs, follow(t, fmt.Sprintf("roll#%d", i), []string{p.url}, []string{"roll"}, from))
	}
	_, stop := c.nodes[0].keepPublishing(t, "roll", "roll-", 5*time.Millisecond)
	waitAll := func(n int) {
		for _, f := range fs {
			waitFor(t, longWait, fmt.Sprintf("%d events at %s", n, f), func() bool { return f.count() >= n })
		}
	}
	waitAll(10)
	for _, d := range c.nodes {
		d.stop()
		d.start()
		// The operator's step before stopping the next instance: nginx
		// leaves a failed upstream out for fail_timeout.
		p.waitRouted(t, d.addr)
		waitAll(fs[0].count() + 20)
	}
	want := append(stop(), "end")
	c.nodes[0].publish(t, "roll", "", "end")
	for _, f := range fs {
		requireExactly(t, f, want)
		require.GreaterOrEqual(t, f.typed("streamer.shutdown"), 1, "%s", f)
		require.Empty(t, f.refusals(), "%s", f)
	}
}

// clientFrom returns an HTTP/1.1 client whose connections come from the
// loopback address ip (any of 127.0.0.0/8 works on Linux).
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

// X-Forwarded-For is believed only from a trusted proxy, and then its
// rightmost untrusted address is the client: for the per-address limit
// and in the logs. nginx is the trusted proxy at 127.0.0.1; clients come
// from other loopback addresses.
func testNginxForwardedFor(t *testing.T, nginx, bin string) {
	for _, flag := range []string{"trusted-proxies", "max-connections-per-ip"} {
		require.True(t, serverHasFlag(t, bin, flag), "streamer serve has no --%s", flag)
	}
	c := startInstances(t, bin, 1,
		withEnv("STREAMER_TRUSTED_PROXIES", "127.0.0.1/32"),
		withEnv("STREAMER_MAX_CONNECTIONS_PER_IP", "1"),
		withEnv("STREAMER_LOG_LEVEL", "debug"))
	d := c.nodes[0]
	p := startNginx(t, nginx, [2]string{d.addr, d.addr}, nginxOptions{})

	// One stream held open from 127.0.0.2 through nginx, one directly
	// from 127.0.0.4 (an untrusted peer) claiming to forward for 127.0.0.5.
	from := d.head(t)
	viaProxy := follow(t, "127.0.0.2 via nginx", []string{p.url}, []string{"xff"}, from, withClient(clientFrom("127.0.0.2")))
	direct := follow(t, "127.0.0.4 direct", []string{d.url}, []string{"xff"}, from,
		withClient(clientFrom("127.0.0.4")), withHeader("X-Forwarded-For", "127.0.0.5"))
	d.publish(t, "xff", "", "one")
	requireExactly(t, viaProxy, []string{"one"})
	requireExactly(t, direct, []string{"one"})

	status := func(base, ip, xff string) int {
		t.Helper()
		client := clientFrom(ip)
		defer client.CloseIdleConnections()
		req, err := http.NewRequest(http.MethodGet, base+"/events?stream=xff", http.NoBody)
		require.NoError(t, err)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			require.NotEmpty(t, resp.Header.Get("Retry-After"), "429 carries Retry-After")
			_, _ = io.Copy(io.Discard, resp.Body)
		}
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name          string
		base, ip, xff string
		want          int
	}{
		{"the same client through the proxy", p.url, "127.0.0.2", "", http.StatusTooManyRequests},
		{"the same client through the proxy, forging an address", p.url, "127.0.0.2", "127.0.0.9", http.StatusTooManyRequests},
		{"another client through the same proxy", p.url, "127.0.0.3", "", http.StatusOK},
		{"an untrusted peer's header is ignored: same peer", d.url, "127.0.0.4", "127.0.0.6", http.StatusTooManyRequests},
		{"an untrusted peer's header is ignored: a full address", d.url, "127.0.0.7", "127.0.0.2", http.StatusOK},
	} {
		require.Equal(t, tc.want, status(tc.base, tc.ip, tc.xff), tc.name)
	}
	require.Len(t, viaProxy.connections(), 1, "%s", viaProxy)
	require.Contains(t, d.logs.String(), "127.0.0.2", "the log names the client behind the proxy")
	require.True(t, strings.Contains(d.logs.String(), "127.0.0.4"), "the log names the untrusted peer")
}

// Every directive of docs/nginx.conf is quoted in docs/operations.md,
// which explains each line: the two cannot drift apart unnoticed.
func TestNginxConfDocumented(t *testing.T) {
	t.Parallel()
	conf, err := os.ReadFile(docsNginxConf)
	require.NoError(t, err)
	doc, err := os.ReadFile("../../docs/operations.md")
	require.NoError(t, err)
	for _, line := range strings.Split(string(conf), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line == "}" || strings.HasPrefix(line, "#") {
			continue
		}
		require.Contains(t, string(doc), line, "docs/operations.md does not quote this line of docs/nginx.conf")
	}
}
