package clientaddr

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestResolver(t *testing.T) {
	t.Parallel()
	res, err := NewResolver([]string{"10.0.0.0/8", "192.168.1.1", "fd00::/8", "::ffff:172.16.0.0/108"})
	require.NoError(t, err)
	none, err := NewResolver(nil)
	require.NoError(t, err)

	for _, tc := range []struct {
		name   string
		res    *Resolver
		remote string
		xff    []string
		want   string
	}{
		{"no proxies trusted: header ignored", none, "10.1.1.1:5000", []string{"1.2.3.4"}, "10.1.1.1"},
		{"untrusted peer: header ignored", res, "8.8.8.8:5000", []string{"1.2.3.4"}, "8.8.8.8"},
		{"trusted peer without header", res, "10.1.1.1:5000", nil, "10.1.1.1"},
		{"trusted peer, one hop", res, "10.1.1.1:5000", []string{"1.2.3.4"}, "1.2.3.4"},
		{"rightmost untrusted hop", res, "10.1.1.1:5000", []string{"6.6.6.6, 1.2.3.4, 10.2.2.2"}, "1.2.3.4"},
		{"client-sent spoof on the left is ignored", res, "192.168.1.1:80", []string{"9.9.9.9", "1.2.3.4,10.0.0.9"}, "1.2.3.4"},
		{"all hops trusted: leftmost", res, "10.1.1.1:5000", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},
		{"garbage hop: last trusted stands in", res, "10.1.1.1:5000", []string{"1.2.3.4, garbage, 10.2.2.2"}, "10.2.2.2"},
		{"garbage rightmost: the peer", res, "10.1.1.1:5000", []string{"1.2.3.4, unknown"}, "10.1.1.1"},
		{"hop with port", res, "10.1.1.1:5000", []string{"1.2.3.4:1234"}, "1.2.3.4"},
		{"bracketed v6 hop", res, "10.1.1.1:5000", []string{"[2001:db8::1]"}, "2001:db8::1"},
		{"v6 peer trusted", res, "[fd00::1]:443", []string{"2001:db8::2"}, "2001:db8::2"},
		{"v4-mapped peer matches a v4 CIDR", res, "[::ffff:10.1.1.1]:443", []string{"1.2.3.4"}, "1.2.3.4"},
		{"v4-mapped hop is unmapped", res, "10.1.1.1:5000", []string{"::ffff:1.2.3.4"}, "1.2.3.4"},
		{"mapped CIDR trusts the v4 range", res, "172.16.0.9:1", []string{"1.2.3.4"}, "1.2.3.4"},
		{"single trusted address, neighbour not", res, "192.168.1.2:80", []string{"1.2.3.4"}, "192.168.1.2"},
		{"no IP peer", res, "@", nil, "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/events", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			require.Equal(t, tc.want, tc.res.Addr(r).String())
		})
	}

	for _, bad := range []string{"10.0.0.0/33", "nope", "fe80::1%eth0"} {
		_, err := NewResolver([]string{bad})
		require.Error(t, err, bad)
	}
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	a := netip.MustParseAddr("1.2.3.4")
	b := netip.MustParseAddr("5.6.7.8")
	l := NewLimiter(2, 0, nil)

	r1, ok := l.Acquire(a)
	require.True(t, ok)
	r2, ok := l.Acquire(a)
	require.True(t, ok)
	_, ok = l.Acquire(a)
	require.False(t, ok, "third connection of a")
	rb, ok := l.Acquire(b)
	require.True(t, ok, "b has its own count")

	r1()
	r1() // a second release does nothing
	require.Equal(t, 1, l.Count(a))
	r3, ok := l.Acquire(a)
	require.True(t, ok)
	r2()
	r3()
	rb()
	require.Empty(t, l.counts, "released addresses leave the map")

	unlimited := NewLimiter(0, 0, nil)
	for range 100 {
		_, ok := unlimited.Acquire(a)
		require.True(t, ok)
	}
	for range 5 {
		_, ok := l.Acquire(netip.Addr{})
		require.True(t, ok, "the zero address is not limited")
	}

	t.Run("concurrent", func(t *testing.T) {
		t.Parallel()
		l := NewLimiter(3, 0, nil)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 200 {
					if release, ok := l.Acquire(a); ok {
						if n := l.Count(a); n > 3 {
							t.Errorf("count %d over the limit", n)
						}
						release()
					}
				}
			})
		}
		wg.Wait()
		require.Zero(t, l.Count(a))
	})
}

// TestLimiterMiddleware runs real HTTP on loopback: held connections count,
// the one beyond the limit gets 429 with Retry-After, and a finished one
// frees its slot.
func TestLimiterMiddleware(t *testing.T) {
	t.Parallel()
	res, err := NewResolver([]string{"127.0.0.1"})
	require.NoError(t, err)
	lim := NewLimiter(2, 1500*time.Millisecond, res.Addr) // 1.5 s: Retry-After rounds up to 2
	entered := make(chan struct{})
	hold := make(chan struct{})
	done := make(chan struct{})
	h := res.Middleware(lim.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := FromContext(r.Context())
		if !ok {
			t.Error("no address in context")
		}
		w.Header().Set("X-Client", a.String())
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case entered <- struct{}{}:
		case <-done:
			return
		}
		select {
		case <-hold:
		case <-done:
		}
	})))
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer close(done) // first: a failing test must not leave handlers blocked

	get := func(xff string) *http.Response {
		req, err := http.NewRequestWithContext(context.Background(), "GET", srv.URL, nil)
		require.NoError(t, err)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		return resp
	}

	var held []*http.Response
	for range 2 {
		resp := get("1.2.3.4")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		<-entered
		require.Equal(t, "1.2.3.4", resp.Header.Get("X-Client"))
		held = append(held, resp)
	}
	refused := get("1.2.3.4")
	require.Equal(t, http.StatusTooManyRequests, refused.StatusCode)
	require.Equal(t, "2", refused.Header.Get("Retry-After"))
	body, err := io.ReadAll(refused.Body)
	require.NoError(t, err)
	require.JSONEq(t, `{"error":"too many connections from this address"}`, string(body))
	refused.Body.Close()

	other := get("5.6.7.8")
	require.Equal(t, http.StatusOK, other.StatusCode, "another client behind the same proxy")
	<-entered

	// End one held connection. The middleware releases the slot before it
	// returns to the server, and the server ends the body only after that:
	// once the client has read to EOF, the slot is free.
	hold <- struct{}{}
	_, _ = io.Copy(io.Discard, held[0].Body)
	held[0].Body.Close()
	require.Equal(t, 1, lim.Count(netip.MustParseAddr("1.2.3.4")))
	again := get("1.2.3.4")
	require.Equal(t, http.StatusOK, again.StatusCode)
	<-entered

	close(hold)
	for _, resp := range []*http.Response{held[1], other, again} {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
