// Package client is the load tool's client worker: a process that holds
// SSE connections and checks what arrives on them. The coordinator starts
// several (a process may have at most 20,000 file descriptors) and drives
// each over stdin/stdout, one JSON [Request] and one JSON [Response] per
// line; [Main] is the worker's body.
//
// A connection is a raw TCP socket with one goroutine blocked in Read and one
// read buffer: no net/http client, no bufio. Each event's data is
// "<key> <n> <unix-nanoseconds> <padding>", where the key is the event's
// stream (or a sequence of its own, such as the events of one audience) and
// n counts the key's events from 1; a connection records the latency of
// every event, which n of each of its keys it has seen (a bitset per key),
// duplicates, events out of order, events of keys it must not see (leaked:
// [ConnGroup.Hidden]) and any other key.
//
// A connection may carry a bearer token ([ConnGroup.Tokens]); it is sent in
// the Authorization header and never kept, reported or logged.
//
// # Invariants
//
//   - Each connection's reader goroutine alone writes its bitsets and last
//     event numbers; reports read only atomic counters.
//   - Every connection's goroutine ends when the worker closes (close
//     request, or end of stdin): closing the socket ends its Read.
package client

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamer-dev/streamer/cmd/streamer-bench/internal/hist"
	"github.com/streamer-dev/streamer/cmd/streamer-bench/internal/sseparse"
)

// ConnGroup asks for Count connections subscribed to Stream, resuming from
// LastEventID when it is set.
//
// Each connection expects the events whose key is Stream, and those of
// Keys; an event whose key is in Hidden is one the server must not have
// sent it (counted as leaked). Tokens, when set, holds one bearer token per
// connection (len Count), sent as "Authorization: Bearer".
type ConnGroup struct {
	Stream      string   `json:"stream"`
	Count       int      `json:"count"`
	LastEventID string   `json:"last_event_id,omitempty"`
	Keys        []string `json:"keys,omitempty"`
	Hidden      []string `json:"hidden,omitempty"`
	Tokens      []string `json:"tokens,omitempty"`
}

// Split returns the group's first k connections and the rest, each with
// its own tokens.
func (g ConnGroup) Split(k int) (head, tail ConnGroup) {
	head, tail = g, g
	head.Count, tail.Count = k, g.Count-k
	if g.Tokens != nil {
		head.Tokens, tail.Tokens = g.Tokens[:k:k], g.Tokens[k:]
	}
	return head, tail
}

// Request is one line from the coordinator.
type Request struct {
	Op string `json:"op"` // open, reset, report, close

	// open
	Addr        string        `json:"addr,omitempty"`
	Groups      []ConnGroup   `json:"groups,omitempty"`
	Parallel    int           `json:"parallel,omitempty"` // dials in flight
	DialTimeout time.Duration `json:"dial_timeout,omitempty"`

	// report: Expected[key] events numbered 1..N were published; Wait is
	// how long to wait for every connection to have them all.
	Expected map[string]int64 `json:"expected,omitempty"`
	Wait     time.Duration    `json:"wait,omitempty"`
}

// Response answers a Request.
type Response struct {
	Err string `json:"err,omitempty"`

	// open
	Opened     int      `json:"opened,omitempty"`
	Failed     int      `json:"failed,omitempty"`
	OpenErrors []string `json:"open_errors,omitempty"`

	Report *Report `json:"report,omitempty"`
}

// Report covers the worker's connections. Latencies and Deliveries
// count since the last reset; the rest since the connections opened.
type Report struct {
	Conns      int           `json:"conns"`
	Open       int           `json:"open"`    // still open
	Dropped    int           `json:"dropped"` // ended by the server or an error
	Deliveries int64         `json:"deliveries"`
	Latency    hist.Snapshot `json:"latency"`
	// Against Expected:
	Complete   bool  `json:"complete"`   // every connection has every expected event
	Missing    int64 `json:"missing"`    // expected events not received, summed over connections
	Duplicates int64 `json:"duplicates"` // events received more than once
	Reordered  int64 `json:"reordered"`  // events received after a later one of their stream
	Unexpected int64 `json:"unexpected"` // events of another key, malformed, or beyond Expected
	Leaked     int64 `json:"leaked"`     // events of a key the connection must not see (ConnGroup.Hidden)
	Gaps       int64 `json:"gaps"`       // streamer.gap events
	Other      int64 `json:"other"`      // other streamer.* events (shutdown)
	Comments   int64 `json:"comments"`   // comment lines (heartbeats, preamble)
	MinGot     int64 `json:"min_got"`    // fewest distinct events on one connection
	Errors     []string
}

// Main runs a worker on stdin and stdout until stdin ends or a close
// request; its flags are args. It returns the exit code.
func Main(args []string) int {
	fs := flag.NewFlagSet("streamer-bench client", flag.ContinueOnError)
	bufSize := fs.Int("buf", 8<<10, "read buffer per connection, bytes")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this worker to the file (to keep the client cheap)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "client:", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "client:", err)
			return 1
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	w := &worker{bufSize: *bufSize}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<10), 64<<20)
	out := json.NewEncoder(os.Stdout)
	for !w.closing.Load() && in.Scan() {
		var req Request
		var resp Response
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			resp.Err = err.Error()
		} else {
			resp = w.handle(req)
		}
		if err := out.Encode(resp); err != nil {
			fmt.Fprintln(os.Stderr, "client: write response:", err)
			return 1
		}
	}
	w.closeAll()
	return 0
}

type worker struct {
	bufSize    int
	hist       hist.Histogram
	deliveries atomic.Int64
	closing    atomic.Bool

	mu     sync.Mutex
	conns  []*clientConn
	errors []string // first few connection errors
}

func (w *worker) handle(req Request) Response {
	switch req.Op {
	case "open":
		return w.open(req)
	case "reset":
		w.hist.Reset()
		w.deliveries.Store(0)
		return Response{}
	case "report":
		r := w.report(req.Expected, req.Wait)
		return Response{Report: &r}
	case "close":
		w.closeAll()
		return Response{}
	default:
		return Response{Err: "unknown op " + strconv.Quote(req.Op)}
	}
}

func (w *worker) noteError(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errors) < 5 {
		w.errors = append(w.errors, err.Error())
	}
}

// open dials every requested connection, Parallel at a time, and returns
// once each has its response headers (the server has taken the subscriber).
func (w *worker) open(req Request) Response {
	parallel := max(req.Parallel, 1)
	timeout := orDefault(req.DialTimeout, 30*time.Second)
	sem := make(chan struct{}, parallel)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		resp   Response
		opened []*clientConn
	)
	for _, g := range req.Groups {
		if g.Tokens != nil && len(g.Tokens) != g.Count {
			return Response{Err: fmt.Sprintf("group of %d connections with %d tokens", g.Count, len(g.Tokens))}
		}
	}
	for _, g := range req.Groups {
		for i := range g.Count {
			token := ""
			if g.Tokens != nil {
				token = g.Tokens[i]
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				c, err := w.dial(req.Addr, g, token, timeout)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					resp.Failed++
					if len(resp.OpenErrors) < 5 {
						resp.OpenErrors = append(resp.OpenErrors, err.Error())
					}
					return
				}
				resp.Opened++
				opened = append(opened, c)
			})
		}
	}
	wg.Wait()
	w.mu.Lock()
	w.conns = append(w.conns, opened...)
	w.mu.Unlock()
	return resp
}

// orDefault is d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// clientConn is one subscriber connection. The reader goroutine owns each
// key's seen and last; the counters are read by reports.
type clientConn struct {
	w      *worker
	keys   []*keySeq // the stream's first
	hidden [][]byte
	nc     net.Conn

	duplicates atomic.Int64
	reordered  atomic.Int64
	unexpected atomic.Int64
	leaked     atomic.Int64
	gaps       atomic.Int64
	other      atomic.Int64
	comments   atomic.Int64
	dropped    atomic.Bool
	now        int64 // receive time of the current read, unix ns
}

// keySeq is one sequence of events a connection expects: those whose data
// begins with key.
type keySeq struct {
	key  []byte
	seen []uint64 // bit n: event n received
	last int64    // highest n received

	distinct atomic.Int64
	maxN     atomic.Int64
}

// newConn is a connection of group g on nc, not yet reading.
func newConn(w *worker, g ConnGroup, nc net.Conn) *clientConn {
	c := &clientConn{w: w, nc: nc}
	for _, k := range append([]string{g.Stream}, g.Keys...) {
		c.keys = append(c.keys, &keySeq{key: []byte(k)})
	}
	for _, k := range g.Hidden {
		c.hidden = append(c.hidden, []byte(k))
	}
	return c
}

// distinct is the number of distinct events the connection has received.
func (c *clientConn) distinct() int64 {
	var n int64
	for _, k := range c.keys {
		n += k.distinct.Load()
	}
	return n
}

func (w *worker) dial(addr string, g ConnGroup, token string, timeout time.Duration) (*clientConn, error) {
	deadline := time.Now().Add(timeout)
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET /events?stream=%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n", g.Stream, addr)
	if g.LastEventID != "" {
		fmt.Fprintf(&req, "Last-Event-ID: %s\r\n", g.LastEventID)
	}
	if token != "" {
		fmt.Fprintf(&req, "Authorization: Bearer %s\r\n", token)
	}
	req.WriteString("\r\n")
	_ = nc.SetDeadline(deadline)
	if _, err := nc.Write(req.Bytes()); err != nil {
		nc.Close()
		return nil, err
	}
	buf := make([]byte, w.bufSize)
	n, chunked, err := readHeaders(nc, buf)
	if err != nil {
		nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	c := newConn(w, g, nc)
	p := &sseparse.Parser{Chunked: chunked, OnEvent: c.event, OnComment: func() { c.comments.Add(1) }}
	go c.read(buf, n, p)
	return c, nil
}

// readHeaders reads the response head, checks for status 200, and moves the
// body bytes that came with it to the front of buf: it returns how many.
func readHeaders(nc net.Conn, buf []byte) (body int, chunked bool, err error) {
	n := 0
	for {
		if n == len(buf) {
			return 0, false, errors.New("response head larger than the read buffer")
		}
		m, err := nc.Read(buf[n:])
		n += m
		if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 {
			head := buf[:i]
			status, _, _ := bytes.Cut(head, []byte("\r\n"))
			if !bytes.HasPrefix(status, []byte("HTTP/1.1 200")) {
				return 0, false, fmt.Errorf("status %q", status)
			}
			chunked = bytes.Contains(bytes.ToLower(head), []byte("\r\ntransfer-encoding: chunked"))
			return copy(buf, buf[i+4:n]), chunked, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("reading response head: %w", err)
		}
	}
}

// read is the connection's goroutine; buf[:n] holds the body bytes that
// arrived with the response head.
func (c *clientConn) read(buf []byte, n int, p *sseparse.Parser) {
	defer c.nc.Close()
	for {
		if n > 0 {
			c.now = time.Now().UnixNano()
			if err := p.Feed(buf[:n]); err != nil {
				c.fail(err)
				return
			}
		}
		var err error
		n, err = c.nc.Read(buf)
		if err != nil && n == 0 {
			if errors.Is(err, io.EOF) {
				err = errors.New("server closed the connection")
			}
			c.fail(err)
			return
		}
	}
}

func (c *clientConn) fail(err error) {
	if c.w.closing.Load() {
		return
	}
	c.dropped.Store(true)
	c.w.noteError(err)
}

// event checks one event. It runs on the connection's goroutine.
func (c *clientConn) event(_, typ, data []byte) {
	if len(typ) > 0 {
		switch {
		case bytes.Equal(typ, []byte("streamer.gap")):
			c.gaps.Add(1)
			return
		case bytes.HasPrefix(typ, []byte("streamer.")):
			c.other.Add(1)
			return
		}
	}
	key, rest, ok1 := bytes.Cut(data, []byte{' '})
	nb, rest, ok2 := bytes.Cut(rest, []byte{' '})
	tb, _, _ := bytes.Cut(rest, []byte{' '})
	n, ok3 := parseUint(nb)
	ts, ok4 := parseUint(tb)
	var k *keySeq
	for _, x := range c.keys {
		if bytes.Equal(key, x.key) {
			k = x
			break
		}
	}
	if k == nil {
		for _, h := range c.hidden {
			if bytes.Equal(key, h) {
				c.leaked.Add(1)
				return
			}
		}
	}
	if !ok1 || !ok2 || !ok3 || !ok4 || n == 0 || n > maxEventN || k == nil {
		c.unexpected.Add(1)
		return
	}
	c.w.hist.Record(time.Duration(c.now - ts))
	c.w.deliveries.Add(1)

	word, bit := int(n/64), uint64(1)<<(n%64)
	if word >= len(k.seen) {
		k.seen = append(k.seen, make([]uint64, word+1-len(k.seen)+len(k.seen)/4)...)
	}
	if k.seen[word]&bit != 0 {
		c.duplicates.Add(1)
		return
	}
	k.seen[word] |= bit
	k.distinct.Add(1)
	if n < k.last {
		c.reordered.Add(1)
	} else {
		k.last = n
		k.maxN.Store(n)
	}
}

// maxEventN bounds the event numbers a connection tracks (its bitset).
const maxEventN = 1 << 26

func parseUint(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return int64(n), n <= math.MaxInt64
}

// report sums the connections' counters against expected, waiting up to
// wait for every connection to have every expected event.
func (w *worker) report(expected map[string]int64, wait time.Duration) Report {
	w.mu.Lock()
	conns := w.conns
	w.mu.Unlock()

	complete := func() bool {
		for _, c := range conns {
			if c.dropped.Load() {
				continue
			}
			for _, k := range c.keys {
				if k.distinct.Load() < expected[string(k.key)] {
					return false
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(wait)
	for !complete() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}

	r := Report{Conns: len(conns), Complete: complete(), MinGot: -1}
	for _, c := range conns {
		got := c.distinct()
		if c.dropped.Load() {
			r.Dropped++
		} else {
			r.Open++
		}
		for _, k := range c.keys {
			exp := expected[string(k.key)]
			if over := k.maxN.Load() > exp; over {
				r.Unexpected++ // counted once per key and connection; see Missing
			}
			r.Missing += max(exp-k.distinct.Load(), 0)
		}
		r.Duplicates += c.duplicates.Load()
		r.Reordered += c.reordered.Load()
		r.Unexpected += c.unexpected.Load()
		r.Leaked += c.leaked.Load()
		r.Gaps += c.gaps.Load()
		r.Other += c.other.Load()
		r.Comments += c.comments.Load()
		if r.MinGot < 0 || got < r.MinGot {
			r.MinGot = got
		}
	}
	r.Deliveries = w.deliveries.Load()
	r.Latency = w.hist.Snapshot()
	w.mu.Lock()
	r.Errors = append([]string(nil), w.errors...)
	w.mu.Unlock()
	return r
}

func (w *worker) closeAll() {
	w.closing.Store(true)
	w.mu.Lock()
	conns := w.conns
	w.conns = nil
	w.mu.Unlock()
	for _, c := range conns {
		_ = c.nc.Close()
	}
}

// AddOutcome adds x's delivery outcome (connections still open or dropped,
// deliveries, completeness, faults, errors) to r.
func (r *Report) AddOutcome(x *Report) {
	r.Open += x.Open
	r.Dropped += x.Dropped
	r.Deliveries += x.Deliveries
	r.Complete = r.Complete && x.Complete
	r.Missing += x.Missing
	r.Duplicates += x.Duplicates
	r.Reordered += x.Reordered
	r.Unexpected += x.Unexpected
	r.Leaked += x.Leaked
	r.Gaps += x.Gaps
	r.Errors = append(r.Errors, x.Errors...)
}
