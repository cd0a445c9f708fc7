package auth_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/auth"
	"github.com/streamer-dev/streamer/internal/clientaddr"
	"github.com/streamer-dev/streamer/internal/cors"
)

// TestWiring mounts the pieces the way doc.go tells the server to, on a
// chi router over real HTTP, and checks what a browser and a script see.
func TestWiring(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef0123456789abcdef")
	authz, err := auth.New(auth.Config{Secret: secret, PublicStreams: mustParse(t, "news")})
	require.NoError(t, err)
	c, err := cors.New(cors.Config{Origins: []string{"https://app.example"}, Paths: []string{"/events", "/publish"}})
	require.NoError(t, err)
	res, err := clientaddr.NewResolver(nil)
	require.NoError(t, err)
	lim := clientaddr.NewLimiter(1, time.Second, res.Addr)

	r := chi.NewRouter()
	r.Use(res.Middleware)
	r.Use(c.Handler)
	r.With(lim.Middleware).Get("/events", func(w http.ResponseWriter, r *http.Request) {
		p, aerr := authz.Subscriber(r, r.URL.Query()["stream"])
		if aerr != nil {
			auth.WriteError(w, aerr)
			return
		}
		w.Header().Set("X-Sub", p.Subject)
		if r.URL.Query().Get("hold") != "" {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done() // an SSE connection: held until the client leaves
		}
	})
	r.Post("/publish", func(w http.ResponseWriter, r *http.Request) {
		grant, aerr := authz.PublishGrant(r)
		if aerr != nil {
			auth.WriteError(w, aerr)
			return
		}
		var ev struct{ Stream string }
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if aerr := grant.Allow([]string{ev.Stream}); aerr != nil {
			auth.WriteError(w, aerr)
			return
		}
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close) // registered first, so it runs after the bodies are closed

	tok, err := auth.Mint(secret, auth.MintOptions{Subject: "alice", Subscribe: []string{"user:{sub}"}, Publish: []string{"orders:*"}, TTL: time.Hour})
	require.NoError(t, err)

	do := func(method, path string, hdr ...string) *http.Response {
		t.Helper()
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader(`{"stream":"` + hdr[len(hdr)-1] + `"}`)
			hdr = hdr[:len(hdr)-1]
		}
		req, err := http.NewRequest(method, srv.URL+path, body)
		require.NoError(t, err)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Add(hdr[i], hdr[i+1])
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	// A preflight for /publish from the app, answered before routing.
	resp := do("OPTIONS", "/publish", "Origin", "https://app.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, "https://app.example", resp.Header.Get("Access-Control-Allow-Origin"))

	// Cross-site EventSource with the cookie.
	resp = do("GET", "/events?stream=user:alice", "Origin", "https://app.example", "Cookie", auth.DefaultCookie+"="+tok)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "alice", resp.Header.Get("X-Sub"))
	require.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))

	// Another site: served (the browser will not let it read), no CORS header.
	resp = do("GET", "/events?stream=news", "Origin", "https://evil.example")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))

	// Refusals over the wire.
	resp = do("GET", "/events?stream=user:alice")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, "Bearer", resp.Header.Get("WWW-Authenticate"))
	resp = do("GET", "/events?stream=user:bob&access_token="+tok)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, `Bearer error="insufficient_scope"`, resp.Header.Get("WWW-Authenticate"))
	var b struct{ Error, Reason, Stream string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
	require.Equal(t, "user:bob", b.Stream)

	// Publishing: header only, streams checked after the body.
	require.Equal(t, http.StatusOK, do("POST", "/publish", "Authorization", "Bearer "+tok, "orders:1").StatusCode)
	require.Equal(t, http.StatusForbidden, do("POST", "/publish", "Authorization", "Bearer "+tok, "user:alice").StatusCode)
	require.Equal(t, http.StatusUnauthorized, do("POST", "/publish", "Cookie", auth.DefaultCookie+"="+tok, "orders:1").StatusCode)

	// The per-address limit: one held connection, the second gets 429.
	held := do("GET", "/events?stream=news&hold=1")
	require.Equal(t, http.StatusOK, held.StatusCode)
	resp = do("GET", "/events?stream=news")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	held.Body.Close() // ends the held handler: the client left
}

func mustParse(t *testing.T, list string) auth.Patterns {
	t.Helper()
	ps, err := auth.ParsePatterns(list)
	require.NoError(t, err)
	return ps
}
