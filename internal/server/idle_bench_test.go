package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/streamer-dev/streamer/internal/auth"
	"github.com/streamer-dev/streamer/internal/cursor"
	"github.com/streamer-dev/streamer/internal/dispatch"
	"github.com/streamer-dev/streamer/internal/server"
)

// nopDispatcher accepts every subscriber and delivers nothing.
type nopDispatcher struct{}

func (nopDispatcher) Subscribe(context.Context, dispatch.Subscriber, []string, *cursor.Position, []string) (cursor.Position, error) {
	return cursor.Position{}, nil
}

func (nopDispatcher) Unsubscribe(dispatch.Subscriber) {}

// BenchmarkIdleConnHeap reports the live heap per idle hijacked stream:
// the server's share plus the client's socket in this same process (the
// client side is the same in every version, so versions compare). With a
// token, the stream also holds its principal and its expiry timer.
func BenchmarkIdleConnHeap(b *testing.B) {
	b.Run("anonymous", func(b *testing.B) { benchIdleConnHeap(b, nil, "") })
	secret := []byte("0123456789abcdef0123456789abcdef")
	authz, err := auth.New(auth.Config{Secret: secret})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := auth.Mint(secret, auth.MintOptions{Subject: "alice", Subscribe: []string{"idle"}, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("token", func(b *testing.B) { benchIdleConnHeap(b, authz, "Authorization: Bearer "+tok+"\r\n") })
}

func benchIdleConnHeap(b *testing.B, authz server.Authorizer, header string) {
	const conns = 1000
	srv := server.New(server.Config{Addr: "127.0.0.1:0", Logger: zerolog.Nop(), Dispatcher: nopDispatcher{}, Auth: authz})
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	var perConn float64
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		clients := make([]net.Conn, conns)
		for i := range clients {
			c, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				b.Fatal(err)
			}
			clients[i] = c
			fmt.Fprintf(c, "GET /events?stream=idle HTTP/1.1\r\nHost: x\r\n%s\r\n", header)
			br := bufio.NewReader(c)
			for { // read up to the first comment: the stream is open
				line, err := br.ReadString('\n')
				if err != nil {
					b.Fatal(err)
				}
				if line == ": streamer\n" {
					break
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perConn = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / conns
		for _, c := range clients {
			c.Close()
		}
		for srv.OpenStreams() > 0 { // the hub notices within a peek interval
			time.Sleep(10 * time.Millisecond)
		}
	}
	b.ReportMetric(perConn, "heap-B/conn")
}
