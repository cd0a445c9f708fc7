package cors

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func serve(t *testing.T, c *CORS, r *http.Request) (*httptest.ResponseRecorder, bool) {
	t.Helper()
	reached := false
	rec := httptest.NewRecorder()
	c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = true
		w.WriteHeader(http.StatusOK)
	})).ServeHTTP(rec, r)
	return rec, reached
}

func allowHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if strings.HasPrefix(k, "Access-Control-Allow-") {
			out[k] = v[0]
		}
	}
	return out
}

func TestCORS(t *testing.T) {
	t.Parallel()
	c, err := New(Config{Origins: []string{"https://App.example.com:443", "http://localhost:3000"}, Paths: []string{"/events", "/publish"}})
	require.NoError(t, err)
	star, err := New(Config{Origins: []string{"*", "https://app.example.com"}})
	require.NoError(t, err)
	off, err := New(Config{})
	require.NoError(t, err)

	req := func(method, path, origin string, hdr ...string) *http.Request {
		r := httptest.NewRequest(method, path, nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		return r
	}
	preflight := func(path, origin, method string, hdr ...string) *http.Request {
		return req("OPTIONS", path, origin, append([]string{"Access-Control-Request-Method", method}, hdr...)...)
	}

	for _, tc := range []struct {
		name    string
		c       *CORS
		r       *http.Request
		status  int
		reached bool
		allow   map[string]string // every Access-Control-Allow-* header
	}{
		{"listed origin, GET", c, req("GET", "/events", "https://app.example.com"), 200, true,
			map[string]string{"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Allow-Credentials": "true"}},
		{"listed origin with port", c, req("POST", "/publish", "http://localhost:3000"), 200, true,
			map[string]string{"Access-Control-Allow-Origin": "http://localhost:3000", "Access-Control-Allow-Credentials": "true"}},
		{"unlisted origin: no CORS header", c, req("GET", "/events", "https://evil.example"), 200, true, map[string]string{}},
		{"other port is another origin", c, req("GET", "/events", "http://localhost:3001"), 200, true, map[string]string{}},
		{"scheme matters", c, req("GET", "/events", "http://app.example.com"), 200, true, map[string]string{}},
		{"null origin", c, req("GET", "/events", "null"), 200, true, map[string]string{}},
		{"no origin", c, req("GET", "/events", ""), 200, true, map[string]string{}},
		{"path not governed", c, req("GET", "/metrics", "https://app.example.com"), 200, true, map[string]string{}},
		{"preflight /events", c, preflight("/events", "https://app.example.com", "GET", "Access-Control-Request-Headers", "authorization, last-event-id"), 204, false,
			map[string]string{
				"Access-Control-Allow-Origin":      "https://app.example.com",
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods":     "GET, POST",
				"Access-Control-Allow-Headers":     "Authorization, Content-Type, Last-Event-Id, Cache-Control",
			}},
		{"preflight /publish", c, preflight("/publish", "https://app.example.com", "POST", "Access-Control-Request-Headers", "content-type,authorization"), 204, false,
			map[string]string{
				"Access-Control-Allow-Origin":      "https://app.example.com",
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods":     "GET, POST",
				"Access-Control-Allow-Headers":     "Authorization, Content-Type, Last-Event-Id, Cache-Control",
			}},
		{"preflight, unlisted origin", c, preflight("/publish", "https://evil.example", "POST"), 403, false, map[string]string{}},
		{"preflight, method not allowed", c, preflight("/publish", "https://app.example.com", "DELETE"), 403, false, map[string]string{}},
		{"preflight, header not allowed", c, preflight("/publish", "https://app.example.com", "POST", "Access-Control-Request-Headers", "x-evil"), 403, false, map[string]string{}},
		{"plain OPTIONS is no preflight", c, req("OPTIONS", "/events", "https://app.example.com"), 200, true,
			map[string]string{"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Allow-Credentials": "true"}},
		{"star: any origin, no credentials", star, req("GET", "/events", "https://other.example"), 200, true,
			map[string]string{"Access-Control-Allow-Origin": "*"}},
		{"star: listed origin keeps credentials", star, req("GET", "/events", "https://app.example.com"), 200, true,
			map[string]string{"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Allow-Credentials": "true"}},
		{"no origins configured: nothing", off, preflight("/events", "https://app.example.com", "GET"), 200, true, map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, reached := serve(t, tc.c, tc.r)
			require.Equal(t, tc.status, rec.Code)
			require.Equal(t, tc.reached, reached)
			require.Equal(t, tc.allow, allowHeaders(rec.Header()))
			if tc.c != off && tc.r.URL.Path != "/metrics" {
				require.Contains(t, rec.Header().Values("Vary"), "Origin")
			}
			if len(tc.allow) > 0 && tc.status == 200 {
				require.Equal(t, "Retry-After, WWW-Authenticate", rec.Header().Get("Access-Control-Expose-Headers"))
			}
		})
	}
}

func TestNewRefusesBadOrigins(t *testing.T) {
	t.Parallel()
	for _, o := range []string{"app.example.com", "ftp://x", "https://x/path", "https://u@x", "https://x?q", "https://"} {
		_, err := New(Config{Origins: []string{o}})
		require.Error(t, err, o)
	}
}
