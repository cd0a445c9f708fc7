package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/auth"
	"github.com/streamer-dev/streamer/internal/pgtest"
	"github.com/streamer-dev/streamer/internal/sequencer"
	"github.com/streamer-dev/streamer/internal/testnet"
)

// TestSendBufferRefused: a send buffer that is not a number, negative, or
// below the minimum is refused before anything connects, naming the
// variable.
func TestSendBufferRefused(t *testing.T) {
	requireServeRefuses(t, "STREAMER_SOCKET_SEND_BUFFER", "abc", "-1", "100", "4095")
	err := serveCommand(context.Background(), []string{"--socket-send-buffer", "10"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "STREAMER_SOCKET_SEND_BUFFER=10")

	require.NoError(t, os.Unsetenv("STREAMER_SOCKET_SEND_BUFFER")) // t.Setenv restores it
	var cfg serveConfig
	require.NoError(t, cfg.bind(&bytes.Buffer{}).parse(nil, ""))
	require.Equal(t, 32768, cfg.SendBuffer, "the documented default")
}

// TestSendBufferApplied: serve sets SO_SNDBUF of the sockets it accepts to
// STREAMER_SOCKET_SEND_BUFFER (the kernel reports twice the value set).
func TestSendBufferApplied(t *testing.T) {
	t.Parallel()
	accepted := make(chan net.Conn, 16)
	listening := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cfg := serveConfig{
		DatabaseURL: pgtest.NewDB(t), Addr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second,
		SendBuffer: 8192, TickInterval: sequencer.DefaultInterval,
		Auth: authFlags{AuthCookie: auth.DefaultCookie},
		listen: func(ctx context.Context, network, addr string) (net.Listener, error) {
			var lc net.ListenConfig
			ln, err := lc.Listen(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			listening <- ln.Addr().String()
			return testnet.Recorder{Listener: ln, Accepted: accepted}, nil
		},
	}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	var addr string
	select {
	case addr = <-listening:
	case err := <-done:
		t.Fatalf("serve ended before listening: %v", err)
	}
	// One request on a connection of our own, held open while its server
	// side is examined: the response shows the server has set the buffer
	// (it does so before serving), and the connection is found among those
	// accepted by its address, whatever else may have connected.
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: streamer\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp.Body.Close()

	for {
		var s net.Conn
		select {
		case s = <-accepted:
		case <-time.After(10 * time.Second):
			t.Fatalf("the server accepted no connection from %s", c.LocalAddr())
		}
		if s.RemoteAddr().String() != c.LocalAddr().String() {
			continue
		}
		n, err := testnet.SendBuffer(s)
		require.NoError(t, err)
		require.Equal(t, 2*8192, n)
		return
	}
}
