package server_test

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/testnet"
)

// TestHTTP2 serves /events over real HTTP/2 (TLS with ALPN h2): streams are
// written by their handler goroutine, never hijacked; events, a resume and
// the shutdown event arrive as over HTTP/1.1.
func TestHTTP2(t *testing.T) {
	t.Parallel()
	// httptest provides a certificate and a client that trusts it.
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	hc := ts.Client()
	tlsCfg := &tls.Config{Certificates: ts.TLS.Certificates, NextProtos: []string{"h2", "http/1.1"}}

	s := setup(t, func(o *stackOpts) {
		o.server.Listen = testnet.Listen(func(ln net.Listener) net.Listener { return tls.NewListener(ln, tlsCfg) })
	})
	base := "https://" + s.srv.Addr()

	c, resp := dialWith(t, hc, base, url.Values{"stream": {"h2"}}, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 2, resp.ProtoMajor, "served over HTTP/2")
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	s.waitLive(t, 1)
	for i := range 20 {
		s.publish(t, "h2", strconv.Itoa(i))
	}
	got := c.take(20)
	requireOrdered(t, got)
	require.Zero(t, s.srv.HubStats().Conns, "an HTTP/2 stream is not hijacked")
	c.close()

	s.publish(t, "h2", "missed")
	r, resp := dialWith(t, hc, base, url.Values{"stream": {"h2"}}, got[19].ID)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 2, resp.ProtoMajor)
	require.Equal(t, "missed", r.next().Data)

	s.shutdown()
	rest := r.ended()
	require.Len(t, rest, 1)
	require.Equal(t, "streamer.shutdown", rest[0].Event)
	require.Zero(t, s.srv.OpenStreams())
}
