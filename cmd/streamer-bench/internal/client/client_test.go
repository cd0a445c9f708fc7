package client

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestEventAccounting feeds one connection events as its reader would and
// checks what a report then says about them.
func TestEventAccounting(t *testing.T) {
	t.Parallel()
	server, client := net.Pipe()
	defer server.Close()
	w := &worker{}
	c := newConn(w, ConnGroup{Stream: "s"}, client)
	w.conns = []*clientConn{c}

	ev := func(stream string, n int64) {
		c.now = time.Now().UnixNano()
		c.event(nil, nil, fmt.Appendf(nil, "%s %d %d pad", stream, n, c.now-int64(time.Millisecond)))
	}
	ev("s", 1)
	ev("s", 3)
	ev("s", 2)                                // reordered
	ev("s", 3)                                // duplicate
	ev("other", 4)                            // another stream
	c.event(nil, nil, []byte("s x 1"))        // malformed
	c.event(nil, []byte("streamer.gap"), nil) // a gap
	c.event(nil, []byte("streamer.shutdown"), nil)

	r := w.report(map[string]int64{"s": 4}, 0)
	require.Equal(t, 1, r.Conns)
	require.Equal(t, 1, r.Open)
	require.False(t, r.Complete, "event 4 never came")
	require.Equal(t, int64(1), r.Missing)
	require.Equal(t, int64(1), r.Duplicates)
	require.Equal(t, int64(1), r.Reordered)
	require.Equal(t, int64(2), r.Unexpected)
	require.Equal(t, int64(1), r.Gaps)
	require.Equal(t, int64(1), r.Other)
	require.Equal(t, int64(3), r.MinGot)
	require.Equal(t, int64(4), r.Deliveries, "every well-formed event of the stream, duplicates too")
	require.NotEmpty(t, r.Latency.Buckets)

	w.closeAll()
}

// TestKeys: a connection that may see two keys checks each one's sequence
// on its own, and counts an event of a hidden key as leaked, not delivered.
func TestKeys(t *testing.T) {
	t.Parallel()
	server, client := net.Pipe()
	defer server.Close()
	w := &worker{}
	c := newConn(w, ConnGroup{Stream: "s", Keys: []string{"s:r"}, Hidden: []string{"s:x"}}, client)
	w.conns = []*clientConn{c}

	ev := func(key string, n int64) {
		c.now = time.Now().UnixNano()
		c.event(nil, nil, fmt.Appendf(nil, "%s %d %d pad", key, n, c.now))
	}
	ev("s", 1)
	ev("s:r", 1)
	ev("s", 2)
	ev("s:r", 2)
	ev("s:x", 1) // leaked
	ev("s:r", 1) // duplicate of its own key, not of s's 1
	ev("s:y", 1) // unknown: unexpected

	r := w.report(map[string]int64{"s": 2, "s:r": 2, "s:x": 1}, 0)
	require.True(t, r.Complete)
	require.Zero(t, r.Missing)
	require.Zero(t, r.Reordered, "each key in order on its own")
	require.Equal(t, int64(1), r.Duplicates)
	require.Equal(t, int64(1), r.Leaked)
	require.Equal(t, int64(1), r.Unexpected)
	require.Equal(t, int64(4), r.MinGot, "distinct events over both keys")
	require.Equal(t, int64(5), r.Deliveries, "the events of its keys, the duplicate too; not the leaked one")

	r = w.report(map[string]int64{"s": 2, "s:r": 3}, 0)
	require.False(t, r.Complete)
	require.Equal(t, int64(1), r.Missing, "event 3 of s:r")
	w.closeAll()
}

// TestOpenWithToken: a connection with a token sends it as a bearer
// Authorization header; one without sends none.
func TestOpenWithToken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	stop := make(chan struct{})
	heads := make(chan string, 2)
	var served sync.WaitGroup
	served.Go(func() {
		var conns []net.Conn
		defer func() {
			for _, nc := range conns {
				nc.Close()
			}
		}()
		for range 2 {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, nc)
			var head strings.Builder
			rd := bufio.NewReader(nc)
			for {
				line, err := rd.ReadString('\n')
				head.WriteString(line)
				if err != nil || line == "\r\n" {
					break
				}
			}
			heads <- head.String()
			fmt.Fprintf(nc, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: s 1 %d x\n\n", time.Now().UnixNano())
		}
		<-stop
	})
	w := &worker{bufSize: 4096}
	resp := w.open(Request{Addr: ln.Addr().String(), Groups: []ConnGroup{
		{Stream: "s", Count: 1, Tokens: []string{"tok.en.1"}},
		{Stream: "s", Count: 1},
	}})
	require.Equal(t, 2, resp.Opened, resp.OpenErrors)
	var got []string
	for range 2 {
		got = append(got, <-heads)
	}
	withToken := 0
	for _, h := range got {
		if strings.Contains(h, "\r\nAuthorization: Bearer tok.en.1\r\n") {
			withToken++
		} else {
			require.NotContains(t, h, "Authorization")
		}
	}
	require.Equal(t, 1, withToken)
	r := w.report(map[string]int64{"s": 1}, 10*time.Second)
	require.True(t, r.Complete)
	require.Equal(t, int64(2), r.Deliveries)
	w.closeAll()
	close(stop)
	served.Wait()

	bad := w.open(Request{Addr: ln.Addr().String(), Groups: []ConnGroup{{Stream: "s", Count: 2, Tokens: []string{"one"}}}})
	require.Zero(t, bad.Opened)
	require.Contains(t, bad.Err, "2 connections with 1 tokens")
}

func TestSplit(t *testing.T) {
	t.Parallel()
	g := ConnGroup{Stream: "s", Count: 3, Keys: []string{"k"}, Tokens: []string{"a", "b", "c"}}
	h, tl := g.Split(2)
	require.Equal(t, ConnGroup{Stream: "s", Count: 2, Keys: []string{"k"}, Tokens: []string{"a", "b"}}, h)
	require.Equal(t, ConnGroup{Stream: "s", Count: 1, Keys: []string{"k"}, Tokens: []string{"c"}}, tl)
	h, tl = ConnGroup{Stream: "s", Count: 3}.Split(1)
	require.Equal(t, 1, h.Count)
	require.Equal(t, 2, tl.Count)
	require.Nil(t, h.Tokens)
}

func TestParseUint(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"0": 0, "42": 42, "9223372036854775807": 1<<63 - 1} {
		n, ok := parseUint([]byte(in))
		require.True(t, ok, in)
		require.Equal(t, want, n, in)
	}
	for _, in := range []string{"", "-1", "1a", "9223372036854775808", "12345678901234567890"} {
		_, ok := parseUint([]byte(in))
		require.False(t, ok, in)
	}
}

func TestOrDefault(t *testing.T) {
	t.Parallel()
	require.Equal(t, time.Second, orDefault(time.Second, time.Minute))
	require.Equal(t, time.Minute, orDefault(0, time.Minute))
	require.Equal(t, time.Minute, orDefault(-time.Second, time.Minute))
}
