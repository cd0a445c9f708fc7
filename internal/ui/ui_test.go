package ui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamer-dev/streamer/internal/ui"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, h http.Handler, method, path string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestHandler(t *testing.T) {
	t.Parallel()
	h := ui.New()

	t.Run("serves every path with its type", func(t *testing.T) {
		t.Parallel()
		types := map[string]string{
			"/":               "text/html; charset=utf-8",
			"/streamer.js":    "text/javascript; charset=utf-8",
			"/ui/app.js":      "text/javascript; charset=utf-8",
			"/ui/app.css":     "text/css; charset=utf-8",
			"/ui/favicon.svg": "image/svg+xml",
			"/ui/metrics":     "text/html; charset=utf-8",
			"/ui/metrics.js":  "text/javascript; charset=utf-8",
			"/ui/metrics.css": "text/css; charset=utf-8",
		}
		require.Len(t, ui.Paths, len(types))
		for _, p := range ui.Paths {
			resp := get(t, h, http.MethodGet, p, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, p)
			require.Equal(t, types[p], resp.Header.Get("Content-Type"), p)
			require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"), p)
			require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), p)
			require.NotEmpty(t, resp.Header.Get("ETag"), p)
			body, _ := io.ReadAll(resp.Body)
			require.NotEmpty(t, body, p)
		}
	})

	t.Run("the page has a CSP and revalidates with its ETag", func(t *testing.T) {
		t.Parallel()
		resp := get(t, h, http.MethodGet, "/", nil)
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'self'")
		again := get(t, h, http.MethodGet, "/", http.Header{"If-None-Match": {resp.Header.Get("ETag")}})
		require.Equal(t, http.StatusNotModified, again.StatusCode)
		head := get(t, h, http.MethodHead, "/streamer.js", nil)
		require.Equal(t, http.StatusOK, head.StatusCode)
	})

	t.Run("nothing else", func(t *testing.T) {
		t.Parallel()
		for _, p := range []string{"/index.html", "/ui/", "/ui/missing.js", "/static/streamer.js", "/events"} {
			require.Equal(t, http.StatusNotFound, get(t, h, http.MethodGet, p, nil).StatusCode, p)
		}
		resp := get(t, h, http.MethodPost, "/", nil)
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		require.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
	})

	t.Run("the page refers only to files the handler serves", func(t *testing.T) {
		t.Parallel()
		for _, page := range []string{"/", "/ui/metrics"} {
			resp := get(t, h, http.MethodGet, page, nil)
			require.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'self'", page)
			body, _ := io.ReadAll(resp.Body)
			refs := regexp.MustCompile(`(?:src|href)="([^"#]+)"`).FindAllStringSubmatch(string(body), -1)
			require.NotEmpty(t, refs)
			for _, m := range refs {
				require.Contains(t, ui.Paths, m[1], "%s refers to %s", page, m[1])
			}
		}
		// Whatever the inspector imports (/streamer.js's backoff) must be
		// served too.
		app, _ := io.ReadAll(get(t, h, http.MethodGet, "/ui/app.js", nil).Body)
		for _, m := range regexp.MustCompile(`(?m)^import .* from "([^"]+)"`).FindAllStringSubmatch(string(app), -1) {
			require.Contains(t, ui.Paths, m[1], "app.js imports %s", m[1])
		}
	})

	t.Run("streamer.js is an ES module exporting subscribe", func(t *testing.T) {
		t.Parallel()
		body, _ := io.ReadAll(get(t, h, http.MethodGet, "/streamer.js", nil).Body)
		js := string(body)
		require.Contains(t, js, "export function subscribe(")
		require.Contains(t, js, "export class Subscription extends EventTarget")
		for _, ev := range []string{`"streamer.gap"`, `"streamer.shutdown"`} {
			require.True(t, strings.Contains(js, ev), "handles %s", ev)
		}
	})
}
