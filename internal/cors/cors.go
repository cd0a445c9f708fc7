package cors

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults of Config.
var (
	DefaultMethods = []string{http.MethodGet, http.MethodPost}
	DefaultHeaders = []string{"Authorization", "Content-Type", "Last-Event-ID", "Cache-Control"}
	// DefaultExpose are the response headers a script may read besides the
	// safelisted ones: what a refusal or an overload tells the client.
	DefaultExpose = []string{"Retry-After", "WWW-Authenticate"}
)

// DefaultMaxAge is how long a browser may cache a preflight answer.
const DefaultMaxAge = 10 * time.Minute

// Config is the allowlist and what allowed origins may do.
type Config struct {
	// Origins are allowed origins, "scheme://host[:port]", or "*" for any
	// origin without credentials (STREAMER_CORS_ORIGINS).
	Origins []string
	// Paths limits the middleware to these request paths (for streamer:
	// /events and /publish); empty means every path.
	Paths []string
	// Methods, Headers and Expose default to DefaultMethods,
	// DefaultHeaders and DefaultExpose; MaxAge to DefaultMaxAge.
	Methods []string
	Headers []string
	Expose  []string
	MaxAge  time.Duration
}

// CORS answers preflights and adds CORS headers for allowed origins.
type CORS struct {
	listed  map[string]bool // normalised origins: credentials allowed
	any     bool            // "*": every other origin, without credentials
	paths   map[string]bool // nil: every path
	methods []string
	headers []string // canonical
	allowM  string
	allowH  string
	expose  string
	maxAge  string
	enabled bool
}

// New checks cfg. With no origins the middleware adds nothing.
func New(cfg Config) (*CORS, error) {
	c := &CORS{listed: map[string]bool{}}
	for _, o := range cfg.Origins {
		o = strings.TrimSpace(o)
		switch {
		case o == "":
			continue
		case o == "*":
			c.any = true
		default:
			n, err := normalise(o)
			if err != nil {
				return nil, err
			}
			c.listed[n] = true
		}
		c.enabled = true
	}
	if len(cfg.Paths) > 0 {
		c.paths = map[string]bool{}
		for _, p := range cfg.Paths {
			c.paths[p] = true
		}
	}
	c.methods = orDefault(cfg.Methods, DefaultMethods)
	for _, h := range orDefault(cfg.Headers, DefaultHeaders) {
		c.headers = append(c.headers, http.CanonicalHeaderKey(h))
	}
	c.allowM = strings.Join(c.methods, ", ")
	c.allowH = strings.Join(c.headers, ", ")
	c.expose = strings.Join(orDefault(cfg.Expose, DefaultExpose), ", ")
	maxAge := cfg.MaxAge
	if maxAge == 0 {
		maxAge = DefaultMaxAge
	}
	c.maxAge = strconv.Itoa(int(maxAge / time.Second))
	return c, nil
}

func orDefault(v, def []string) []string {
	if len(v) == 0 {
		return def
	}
	return v
}

// normalise turns a configured origin into the form browsers send:
// lower-case scheme and host, no default port, nothing after the host.
func normalise(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil {
		return "", fmt.Errorf("cors origin %q: %w", o, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("cors origin %q: want scheme://host[:port] (or *)", o)
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" && !(scheme == "http" && p == "80") && !(scheme == "https" && p == "443") {
		host += ":" + p
	}
	return scheme + "://" + host, nil
}

// allowed says whether origin may read responses and with credentials.
func (c *CORS) allowed(origin string) (ok, credentials bool) {
	if c.listed[strings.ToLower(origin)] {
		return true, true
	}
	return c.any, false
}

// Handler is the middleware. Mount it with the router's Use, before
// routing, so that it sees OPTIONS preflights for which no route exists.
func (c *CORS) Handler(next http.Handler) http.Handler {
	if !c.enabled {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.paths != nil && !c.paths[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		ok, creds := c.allowed(origin)
		if preflight {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !ok || !c.preflightFits(r) {
				refuse(w)
				return
			}
			c.allow(h, origin, creds)
			h.Set("Access-Control-Allow-Methods", c.allowM)
			h.Set("Access-Control-Allow-Headers", c.allowH)
			h.Set("Access-Control-Max-Age", c.maxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if ok {
			c.allow(h, origin, creds)
			h.Set("Access-Control-Expose-Headers", c.expose)
		}
		next.ServeHTTP(w, r)
	})
}

func (c *CORS) allow(h http.Header, origin string, creds bool) {
	if creds {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	} else {
		h.Set("Access-Control-Allow-Origin", "*")
	}
}

// preflightFits reports whether the requested method and headers are
// allowed.
func (c *CORS) preflightFits(r *http.Request) bool {
	if !slices.Contains(c.methods, r.Header.Get("Access-Control-Request-Method")) {
		return false
	}
	for _, line := range r.Header.Values("Access-Control-Request-Headers") {
		for _, h := range strings.Split(line, ",") {
			h = strings.TrimSpace(h)
			if h != "" && !slices.Contains(c.headers, http.CanonicalHeaderKey(h)) {
				return false
			}
		}
	}
	return true
}

func refuse(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": "cors: origin, method or header not allowed"})
}
