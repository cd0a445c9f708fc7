package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/sseread"
)

// instances is several server processes on one database, each on its own
// loopback address.
type instances struct {
	dbURL string
	pool  *pgxpool.Pool // for publishing with SQL
	nodes []*deployment
}

// startInstances creates a database and starts n servers on it, one after the
// other, each ready before the next starts.
func startInstances(t *testing.T, bin string, n int, opts ...deployOption) *instances {
	t.Helper()
	dbURL := pgtest.NewDB(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close) // after the servers stop, before the database is dropped
	c := &instances{dbURL: dbURL, pool: pool}
	for range n {
		c.nodes = append(c.nodes, deployOnDB(t, bin, dbURL, pool, append([]deployOption{withEnv("STREAMER_UI", "false")}, opts...)...))
	}
	return c
}

// urls returns the base URL of every node, in node order.
func (c *instances) urls() []string {
	var out []string
	for _, d := range c.nodes {
		out = append(out, d.url)
	}
	return out
}

// serverHasFlag reports whether `streamer serve --help` lists flag, for
// tests of features that the binary may not have yet.
func serverHasFlag(t *testing.T, bin, flag string) bool {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--help")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, _ := cmd.CombinedOutput() // --help may exit non-zero
	require.Contains(t, string(out), "--heartbeat", "serve --help output:\n%s", out)
	return strings.Contains(string(out), "--"+flag)
}

// event is one event as published or received.
type event struct {
	Stream string `json:"stream"`
	Type   string `json:"event,omitempty"`
	Data   string `json:"data"`
}

// publishHTTP sends POST /publish with evs and returns the status and the
// ids of a 200 answer. err is a transport error: the request may not have
// reached the server.
func publishHTTP(client *http.Client, base string, evs ...event) (status int, ids []int64, err error) {
	body, err := json.Marshal(evs)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Post(base+"/publish", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read the answer of POST %s/publish (%d): %w", base, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, nil
	}
	var out struct {
		IDs []int64 `json:"ids"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("answer %q: %w", b, err)
	}
	return resp.StatusCode, out.IDs, nil
}

// httpPublisher publishes "<prefix><i>" on stream with POST /publish, one
// request at a time, each to the next of bases in turn. A request is
// counted as published only after its 200. A refusal that the contract
// says published nothing (503, or a connection that could not be made) is
// retried on the next base. A connection closed or reset without an answer
// is looked up in the database: not there, it is counted as reset and
// retried with the same data (a late commit would then show as a
// duplicate); there, the answer of a published event was lost, which
// fails the test. Any other outcome fails the test too, because it would
// leave the test unsure what was published.
type httpPublisher struct {
	t      *testing.T
	pool   *pgxpool.Pool
	bases  []string
	stream string
	prefix string
	client *http.Client

	mu      sync.Mutex
	sent    []string
	refused int
	resets  []string // why each unanswered request ended
	err     error

	quit, done chan struct{}
	stopOnce   sync.Once
}

func startHTTPPublisher(t *testing.T, pool *pgxpool.Pool, bases []string, stream, prefix string, interval time.Duration) *httpPublisher {
	t.Helper()
	p := &httpPublisher{
		t: t, pool: pool, bases: bases, stream: stream, prefix: prefix,
		// A fresh connection per request: a kept-alive one that the server
		// closes as it drains could fail a request after it was written,
		// and its outcome would be unknown.
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		quit:   make(chan struct{}), done: make(chan struct{}),
	}
	go p.run(interval)
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *httpPublisher) run(interval time.Duration) {
	defer close(p.done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	next := 0
	for i := 0; ; {
		data := fmt.Sprintf("%s%d", p.prefix, i)
		base := p.bases[next%len(p.bases)]
		next++
		status, ids, err := publishHTTP(p.client, base, event{Stream: p.stream, Data: data})
		var opErr *net.OpError
		switch {
		case err == nil && status == http.StatusOK && len(ids) == 1:
			p.mu.Lock()
			p.sent = append(p.sent, data)
			p.mu.Unlock()
			i++
		case err == nil && status == http.StatusServiceUnavailable,
			err != nil && errors.As(err, &opErr) && opErr.Op == "dial":
			p.mu.Lock()
			p.refused++
			p.mu.Unlock()
		case err != nil && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
			var n int
			qerr := p.pool.QueryRow(context.Background(),
				"SELECT count(*) FROM streamer.events WHERE stream = $1 AND data = $2", p.stream, data).Scan(&n)
			p.mu.Lock()
			if qerr != nil || n != 0 {
				p.err = fmt.Errorf("POST %s/publish of %q ended without an answer (%w), and the event is in the database %d times (lookup error: %v)",
					base, data, err, n, qerr)
				p.mu.Unlock()
				return
			}
			p.resets = append(p.resets, fmt.Sprintf("%s: %v", base, err))
			p.mu.Unlock()
		default:
			p.mu.Lock()
			p.err = fmt.Errorf("POST %s/publish of %q: status %d, ids %v: %w", base, data, status, ids, err)
			p.mu.Unlock()
			return
		}
		select {
		case <-p.quit:
			return
		case <-tick.C:
		}
	}
}

// published returns how many events have been published so far.
func (p *httpPublisher) published() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

// stop ends publishing and returns what was published, in commit order,
// how many requests were refused, and why those that went unanswered
// without publishing ended.
func (p *httpPublisher) stop() ([]string, int, []string) {
	p.stopOnce.Do(func() {
		close(p.quit)
		<-p.done
		p.client.CloseIdleConnections()
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	require.NoError(p.t, p.err, "publishing over HTTP")
	return slices.Clone(p.sent), p.refused, slices.Clone(p.resets)
}

// received is defined in resume_test.go: ID, Type, Data.

// follower is an SSE client written for these tests: it reads /events from
// one of several bases and, whenever its connection ends or is refused,
// reconnects to the next base with the Last-Event-ID of the last event it
// received, as a client behind a load balancer would. It keeps every event,
// in arrival order.
type follower struct {
	name  string
	bases []string
	query string // "/events?stream=..."

	client *http.Client
	header http.Header // sent on every request, besides Last-Event-ID

	mu       sync.Mutex
	events   []received  // events with data, server events included
	arrived  []time.Time // when each of events was read
	lastID   string
	conns    []string // the base of each connection answered with 200
	protos   []string // the protocol and Content-Encoding of each
	failures []string // why each connection ended or was refused

	cancel context.CancelFunc
	done   chan struct{}
}

type followerOption func(*follower)

// withClient makes the follower use client (for TLS, HTTP/2).
func withClient(c *http.Client) followerOption { return func(f *follower) { f.client = c } }

// withHeader sends a header on every request.
func withHeader(k, v string) followerOption { return func(f *follower) { f.header.Set(k, v) } }

// follow starts a follower on streams from the resume point from ("" for
// none), connecting first to bases[0]. It stops at the test's cleanup.
func follow(t *testing.T, name string, bases []string, streams []string, from string, opts ...followerOption) *follower {
	t.Helper()
	q := make([]string, len(streams))
	for i, s := range streams {
		q[i] = "stream=" + s
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{
		name: name, bases: bases, query: "/events?" + strings.Join(q, "&"),
		client: &http.Client{Transport: &http.Transport{}},
		header: http.Header{}, lastID: from, cancel: cancel, done: make(chan struct{}),
	}
	for _, o := range opts {
		o(f)
	}
	go f.run(ctx)
	t.Cleanup(f.close)
	return f
}

// close stops the follower and waits for its goroutine.
func (f *follower) close() {
	f.cancel()
	<-f.done
	f.client.CloseIdleConnections()
}

func (f *follower) run(ctx context.Context) {
	defer close(f.done)
	for i := 0; ctx.Err() == nil; i++ {
		base := f.bases[i%len(f.bases)]
		err := f.connect(ctx, base)
		if ctx.Err() != nil {
			return
		}
		f.mu.Lock()
		f.failures = append(f.failures, fmt.Sprintf("%s: %v", base, err))
		f.mu.Unlock()
		// A client's reconnect delay (the server's retry: is 200 ms in
		// these tests), not a wait for a condition.
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// connect reads one connection to base until it ends, and says why.
func (f *follower) connect(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+f.query, http.NoBody)
	if err != nil {
		return err
	}
	req.Header = f.header.Clone()
	f.mu.Lock()
	if f.lastID != "" {
		req.Header.Set("Last-Event-ID", f.lastID)
	}
	f.mu.Unlock()
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	f.mu.Lock()
	f.conns = append(f.conns, base)
	f.protos = append(f.protos, strings.TrimSpace(resp.Proto+" "+resp.Header.Get("Content-Encoding")))
	f.mu.Unlock()
	var body io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" && !resp.Uncompressed {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		body = zr
	}
	return f.read(body)
}

// read parses an event stream, keeping each dispatched event and the last
// id, until the body ends.
// Events carry the last event id over, as EventSource does: an event
// without an id field has the one before it.
func (f *follower) read(body io.Reader) error {
	f.mu.Lock()
	from := f.lastID
	f.mu.Unlock()
	err := sseread.Read(body, from, func(b sseread.Block) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.lastID = b.LastID
		if b.HasData {
			f.events = append(f.events, received{ID: b.LastID, Type: typeOrMessage(b.Type), Data: b.Data})
			f.arrived = append(f.arrived, time.Now())
		}
	})
	if errors.Is(err, io.EOF) {
		return errors.New("stream ended")
	}
	return err
}

// data returns the data of the events received of type message (untyped),
// in arrival order.
func (f *follower) data() []string { return f.messages(func(ev received) string { return ev.Data }) }

// ids returns the ids of the untyped events received, in arrival order.
func (f *follower) ids() []string { return f.messages(func(ev received) string { return ev.ID }) }

// messages returns field of each event received of type message
// (untyped), in arrival order.
func (f *follower) messages(field func(received) string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, ev := range f.events {
		if ev.Type == "message" {
			out = append(out, field(ev))
		}
	}
	return out
}

// count returns how many untyped events have arrived.
func (f *follower) count() int { return len(f.data()) }

// refusals returns why each refused connection attempt was refused
// (answers other than 200).
func (f *follower) refusals() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.failures {
		if strings.Contains(s, ": status ") {
			out = append(out, s)
		}
	}
	return out
}

// arrival returns when the untyped event with data arrived, and whether
// it has.
func (f *follower) arrival(data string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, ev := range f.events {
		if ev.Type == "message" && ev.Data == data {
			return f.arrived[i], true
		}
	}
	return time.Time{}, false
}

// protocols returns, for every connection answered with 200, its protocol
// and Content-Encoding ("HTTP/2.0", "HTTP/1.1 gzip").
func (f *follower) protocols() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.protos)
}

// connections returns the base of every connection that was answered with
// 200, in order.
func (f *follower) connections() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.conns)
}

// typed returns how many events of type typ have arrived.
func (f *follower) typed(typ string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, ev := range f.events {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

func (f *follower) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprintf("follower %s: %d events, connections %v, ends %v", f.name, len(f.events), f.conns, f.failures)
}

// requireExactly waits until f has received as many untyped events as want
// holds, then requires them to be want exactly (nothing lost, repeated or
// reordered) with strictly increasing ids.
func requireExactly(t *testing.T, f *follower, want []string) {
	t.Helper()
	waitFor(t, longWait, fmt.Sprintf("%d events at %s", len(want), f.name), func() bool { return f.count() >= len(want) })
	got := f.data()
	if !slices.Equal(want, got) {
		t.Fatalf("%s: received %d events, want %d; first difference at %d\n%s",
			f.name, len(got), len(want), firstDifference(want, got), f)
	}
	requireOrdered(t, f.ids())
}

func firstDifference(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
