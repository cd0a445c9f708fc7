package server_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSlowloris: 2,000 connections trickle their request headers a byte at
// a time. Trickling does not extend ReadHeaderTimeout, so the server
// closes every one of them, and meanwhile a real subscriber connects and
// receives events. Not parallel: it holds 4,000 descriptors.
func TestSlowloris(t *testing.T) {
	const (
		tricklers = 2000
		timeout   = 5 * time.Second
	)
	s := setup(t, func(o *stackOpts) { o.server.ReadHeaderTimeout = timeout })

	conns := make([]net.Conn, 0, tricklers)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	head := "GET /events?stream=real HTTP/1.1\r\nHost: x\r\nX-Slow: "
	for range tricklers {
		c, err := net.Dial("tcp", s.srv.Addr())
		require.NoError(t, err)
		conns = append(conns, c)
		_, err = io.WriteString(c, head)
		require.NoError(t, err)
	}
	began := time.Now()

	// trickle writes one more header byte to every connection still open
	// and returns how many are; a write to a connection the server closed
	// fails by the second attempt (the first draws a reset).
	open := make([]bool, tricklers)
	for i := range open {
		open[i] = true
	}
	trickle := func() int {
		n := 0
		for i, c := range conns {
			if !open[i] {
				continue
			}
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write([]byte{'a'}); err != nil {
				open[i] = false
				c.Close()
				continue
			}
			n++
		}
		return n
	}

	// A real subscriber, while the half-open requests are there.
	real := subscribe(t, s.url, []string{"real"}, "")
	s.waitLive(t, 1)
	s.publish(t, "real", "served")
	require.Equal(t, "served", real.next().Data)
	stillOpen := trickle()
	t.Logf("subscriber served %v after the tricklers connected, %d of them still open", time.Since(began), stillOpen)
	require.Greater(t, stillOpen, tricklers/2, "the subscriber was served while the half-open requests were open")

	// Keep trickling: every connection is closed once ReadHeaderTimeout
	// has passed, however many bytes it sent.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(timeout + 20*time.Second)
	for n := stillOpen; n > 0; n = trickle() {
		select {
		case <-tick.C:
		case <-giveUp:
			t.Fatalf("%d trickling connections still open %v after they connected", n, time.Since(began))
		}
	}
	elapsed := time.Since(began)
	t.Logf("all %d trickling connections closed after %v", tricklers, elapsed)

	// The real subscriber is still served.
	s.publish(t, "real", "still served")
	require.Equal(t, "still served", real.next().Data)
}
