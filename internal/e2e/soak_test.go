package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sse "github.com/tmaxmax/go-sse"
)

// soakConfig shapes the churn soak (make soak).
type soakConfig struct {
	duration time.Duration // churn lasts this long
	clients  int
	streams  int           // each client subscribes to one of them
	events   int           // a connection reads between 1 and this many events, then leaves
	maxLife  time.Duration // or leaves after this long from its first event, whichever comes first
	stall    time.Duration // a client that stops reading holds its socket up to this long
	away     time.Duration // before it resumes, up to this long
}

// soakFromEnv reads STREAMER_SOAK_DURATION (the soak runs only when it is
// set) and STREAMER_SOAK_CLIENTS.
func soakFromEnv(t *testing.T) soakConfig {
	raw := os.Getenv("STREAMER_SOAK_DURATION")
	if raw == "" {
		t.Skip("the churn soak runs with STREAMER_SOAK_DURATION set (make soak; .ci/run runs 60s)")
	}
	d, err := time.ParseDuration(raw)
	require.NoError(t, err, "STREAMER_SOAK_DURATION")
	c := soakConfig{duration: d, clients: 2000, streams: 16, events: 100, maxLife: 8 * time.Second, stall: 3 * time.Second, away: time.Second}
	if raw := os.Getenv("STREAMER_SOAK_CLIENTS"); raw != "" {
		c.clients, err = strconv.Atoi(raw)
		require.NoError(t, err, "STREAMER_SOAK_CLIENTS")
	}
	return c
}

// How a connection ends.
const (
	leaveClean   = iota // close: FIN
	leaveReset          // SO_LINGER 0, close: RST
	leaveStalled        // stop reading for a while, then close (FIN or RST)
	leaveModes
)

// soakClient is one client of the soak: it connects, reads a random number
// of events, leaves in one of the three ways, and resumes with the last id
// it processed, until the soak ends; then it reads until it has everything.
type soakClient struct {
	stream string
	mu     sync.Mutex
	got    []frame
	last   string
	// Counters of what it did, for the log.
	connects, refused, gaps int
	left                    [leaveModes]int
}

func (c *soakClient) add(f frame) {
	c.mu.Lock()
	c.got = append(c.got, f)
	c.last = f.ID
	c.mu.Unlock()
}

func (c *soakClient) received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// soak is a churn soak in progress.
type soak struct {
	cfg     soakConfig
	addr    string
	start   string        // the token every client starts from
	calm    chan struct{} // closed when the churn ends: each client catches up and leaves
	wantN   []atomic.Int64
	clients []*soakClient
}

// dial sends GET /events with Last-Event-ID over a raw TCP connection, so
// that the client decides how the connection ends. It returns the
// connection and its reader positioned at the body, or ok false when the
// server refused or could not be reached.
func (s *soak) dial(ctx context.Context, c *soakClient) (conn *net.TCPConn, body *bufio.Reader, ok bool) {
	d := net.Dialer{Timeout: connectTimeout}
	nc, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, nil, false
	}
	conn = nc.(*net.TCPConn)
	c.mu.Lock()
	last := c.last
	c.mu.Unlock()
	_ = conn.SetDeadline(time.Now().Add(connectTimeout))
	q := url.Values{"stream": {c.stream}}
	if _, err := fmt.Fprintf(conn, "GET /events?%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nLast-Event-ID: %s\r\n\r\n", q.Encode(), s.addr, last); err != nil {
		conn.Close()
		return nil, nil, false
	}
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		conn.Close()
		return nil, nil, false
	}
	_ = conn.SetDeadline(time.Time{})
	// The stream is the rest of the connection (a hijacked stream has no
	// chunked framing): read it from br.
	return conn, br, true
}

// read reads events until n data events were processed (n < 0: until the
// client has want events), or the connection breaks, or its read deadline
// passes: firstWait for the first event (a replay may queue behind many
// others), then life from the first event on (n < 0: firstWait from each).
func (s *soak) read(c *soakClient, conn *net.TCPConn, body *bufio.Reader, n int, want func() int64, life time.Duration) {
	_ = conn.SetReadDeadline(time.Now().Add(soakFirstWait))
	seen := 0
	for ev, err := range sse.Read(body, nil) {
		if err != nil {
			return
		}
		switch {
		case ev.Type == "streamer.gap":
			c.mu.Lock()
			c.gaps++
			c.mu.Unlock()
		case ev.Type != "" || ev.Data == "":
			// streamer.shutdown; the retry: block
		default:
			c.add(frame{ID: ev.LastEventID, Data: ev.Data})
			seen++
			switch {
			case n >= 0 && seen >= n:
				return
			case n >= 0 && seen == 1:
				_ = conn.SetReadDeadline(time.Now().Add(life))
			case n < 0 && int64(c.received()) >= want():
				return
			case n < 0:
				_ = conn.SetReadDeadline(time.Now().Add(soakFirstWait))
			}
		}
	}
}

// soakFirstWait bounds the wait for a connection's first event: a client
// that gave up on its replay sooner, every time, would never progress
// while the server is behind (each new connection queues its replay
// again), which is not what the soak is about.
const soakFirstWait = time.Minute

// run is one client's life.
func (s *soak) run(ctx context.Context, i int) {
	c := s.clients[i]
	rnd := rand.New(rand.NewPCG(uint64(i), 15))
	wait := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	for {
		select {
		case <-s.calm:
			s.finish(ctx, c, i)
			return
		case <-ctx.Done():
			return
		default:
		}
		conn, body, ok := s.dial(ctx, c)
		if !ok {
			c.mu.Lock()
			c.refused++
			c.mu.Unlock()
			if !wait(100*time.Millisecond + time.Duration(rnd.Int64N(int64(400*time.Millisecond)))) {
				return
			}
			continue
		}
		c.mu.Lock()
		c.connects++
		c.mu.Unlock()
		life := s.cfg.maxLife/4 + time.Duration(rnd.Int64N(int64(s.cfg.maxLife)))
		s.read(c, conn, body, 1+rnd.IntN(s.cfg.events), nil, life)
		mode := rnd.IntN(leaveModes)
		c.mu.Lock()
		c.left[mode]++
		c.mu.Unlock()
		switch mode {
		case leaveReset:
			_ = conn.SetLinger(0)
		case leaveStalled:
			// Stops reading: whatever the server sends meanwhile stays in
			// the socket buffers and is never processed.
			wait(time.Duration(rnd.Int64N(int64(s.cfg.stall))))
			if rnd.IntN(2) == 0 {
				_ = conn.SetLinger(0)
			}
		}
		conn.Close()
		if !wait(time.Duration(rnd.Int64N(int64(s.cfg.away)))) {
			return
		}
	}
}

// finish connects until the client has every event the database holds for
// its stream, then leaves cleanly.
func (s *soak) finish(ctx context.Context, c *soakClient, i int) {
	want := func() int64 { return s.wantN[i].Load() }
	for ctx.Err() == nil && int64(c.received()) < want() {
		conn, body, ok := s.dial(ctx, c)
		if !ok {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		s.read(c, conn, body, -1, want, 0)
		conn.Close()
	}
}

// TestSoak is the churn soak of issue #15 (make soak): clients connect,
// read a random number of events and leave (cleanly, by RST, or by
// stopping to read), then resume with Last-Event-ID, while SQL publishers
// insert with rollbacks. At the end every client must hold exactly the
// committed events of its stream, and the server's goroutines, descriptors,
// sockets, kernel socket memory, memory and database connections must be
// back within the margins of soakMargins.
func TestSoak(t *testing.T) {
	cfg := soakFromEnv(t)
	bin := buildServer(t, t.TempDir())
	d := deploy(t, bin, withEnv("STREAMER_LOG_LEVEL", "warn"), withEnv("STREAMER_HEARTBEAT", "5s"))
	pid := d.proc.Pid

	base := sampleServer(t, d, pid)
	t.Logf("soak: %d clients on %d streams for %v; server at start: %s", cfg.clients, cfg.streams, cfg.duration, base)

	l := startLoad(t, d, loadConfig{streams: cfg.streams, publishers: 2, interval: 50 * time.Millisecond, rollback: 0.1})
	s := &soak{cfg: cfg, addr: d.addr, start: l.start, calm: make(chan struct{}), wantN: make([]atomic.Int64, cfg.clients)}
	for i := range cfg.clients {
		s.clients = append(s.clients, &soakClient{stream: l.streams[i%len(l.streams)], last: l.start})
		s.wantN[i].Store(1 << 62) // until the truth is known
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := range s.clients {
		wg.Go(func() { s.run(ctx, i) })
	}
	// Sampled on the test's goroutine (sampleServer may fail the test).
	var peak serverSample
	tick := time.NewTicker(5 * time.Second)
	churn := time.NewTimer(cfg.duration)
	for running := true; running; {
		select {
		case <-tick.C:
			peak = peak.max(sampleServer(t, d, pid))
		case <-churn.C:
			running = false
		case <-d.proc.Done():
			t.Fatalf("server exited during the soak: %v", d.proc.Err())
		}
	}
	tick.Stop()

	// The end: publishers stop (and every acknowledged commit must be in
	// the database), then each client catches up and leaves.
	l.finish(0)
	truth := l.truth()
	for i, c := range s.clients {
		s.wantN[i].Store(int64(len(expected(truth, []string{c.stream}))))
	}
	behind, worst := 0, int64(0)
	for i, c := range s.clients {
		if d := s.wantN[i].Load() - int64(c.received()); d > 0 {
			behind++
			worst = max(worst, d)
		}
	}
	t.Logf("soak: at the end of the churn %d clients were behind the database (by up to %d events); each now catches up", behind, worst)
	close(s.calm)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		cancel()
		<-done
	}

	var connects, refused int
	var left [leaveModes]int
	for i, c := range s.clients {
		connects += c.connects
		refused += c.refused
		for m := range left {
			left[m] += c.left[m]
		}
		require.Zero(t, c.gaps, "client %d got a streamer.gap", i)
		requireExact(t, i, []string{c.stream}, expected(truth, []string{c.stream}), c.got)
	}
	t.Logf("soak: %d connections (%d refused or failed dials), left cleanly %d, by RST %d, by stopping to read %d; every client exact; server at peak: %s",
		connects, refused, left[leaveClean], left[leaveReset], left[leaveStalled], peak)

	end := waitBaseline(t, d, pid, base)
	t.Logf("soak: server after the clients left: %s", end)
}
