package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"net/http"
	"time"
)

//go:embed static
var static embed.FS

// Paths are the request paths Handler serves; mount it on each.
var Paths = []string{"/", "/streamer.js", "/ui/app.js", "/ui/app.css", "/ui/favicon.svg",
	"/ui/metrics", "/ui/metrics.js", "/ui/metrics.css"}

// csp lets the inspector load and connect to its own origin only.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type file struct {
	body        []byte
	contentType string
	etag        string
	page        bool // an HTML page: gets the Content-Security-Policy
}

// Handler serves the inspector and the JS client from the embedded files.
type Handler struct {
	files map[string]file
}

var _ http.Handler = (*Handler)(nil)

// New returns the handler; it reads the embedded files once.
func New() *Handler {
	h := &Handler{files: make(map[string]file)}
	add := func(path, name, contentType string, page bool) {
		body, err := static.ReadFile("static/" + name)
		if err != nil {
			panic(fmt.Sprintf("ui: embedded file %s: %v", name, err)) // a build without the file
		}
		sum := sha256.Sum256(body)
		h.files[path] = file{
			body:        body,
			contentType: contentType,
			etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
			page:        page,
		}
	}
	add("/", "index.html", "text/html; charset=utf-8", true)
	add("/streamer.js", "streamer.js", "text/javascript; charset=utf-8", false)
	add("/ui/app.js", "app.js", "text/javascript; charset=utf-8", false)
	add("/ui/app.css", "app.css", "text/css; charset=utf-8", false)
	add("/ui/favicon.svg", "favicon.svg", "image/svg+xml", false)
	add("/ui/metrics", "metrics.html", "text/html; charset=utf-8", true)
	add("/ui/metrics.js", "metrics.js", "text/javascript; charset=utf-8", false)
	add("/ui/metrics.css", "metrics.css", "text/css; charset=utf-8", false)
	return h
}

// ServeHTTP answers GET and HEAD for the paths in Paths.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := h.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", f.contentType)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", f.etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	if f.page {
		hd.Set("Content-Security-Policy", csp)
		hd.Set("Referrer-Policy", "no-referrer")
	}
	// ServeContent answers If-None-Match with 304 and Range requests.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
