package clientaddr

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// DefaultRetryAfter is the Retry-After of a 429 unless configured.
const DefaultRetryAfter = 5 * time.Second

// Limiter bounds the concurrent connections of each client address.
type Limiter struct {
	max        int
	retryAfter time.Duration
	resolve    func(*http.Request) netip.Addr

	mu     sync.Mutex
	counts map[netip.Addr]int // only addresses with a connection
}

// NewLimiter allows max connections per address (0: no limit). resolve
// gives a request's address (a Resolver's Addr); retryAfter is rounded up
// to whole seconds, 0 meaning DefaultRetryAfter.
func NewLimiter(max int, retryAfter time.Duration, resolve func(*http.Request) netip.Addr) *Limiter {
	if retryAfter <= 0 {
		retryAfter = DefaultRetryAfter
	}
	return &Limiter{max: max, retryAfter: retryAfter, resolve: resolve, counts: map[netip.Addr]int{}}
}

// Acquire takes a connection slot for a. It returns false when a is at the
// limit; otherwise release must be called when the connection ends (once;
// further calls do nothing). The zero Addr (a peer without an IP address,
// as on a unix socket) is not limited: all such peers would share one
// slot count.
func (l *Limiter) Acquire(a netip.Addr) (release func(), ok bool) {
	if l.max <= 0 || !a.IsValid() {
		return func() {}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts[a] >= l.max {
		return nil, false
	}
	l.counts[a]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.counts[a]--; l.counts[a] <= 0 {
				delete(l.counts, a)
			}
		})
	}, true
}

// Count returns a's connections.
func (l *Limiter) Count(a netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[a]
}

// Middleware holds a slot for the whole of each request, answering 429
// with Retry-After and a JSON error when the request's address is at the
// limit. Mount it on GET /events only: it counts concurrent requests.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := FromContext(r.Context())
		if !ok {
			a = l.resolve(r)
		}
		release, ok := l.Acquire(a)
		if !ok {
			WriteTooMany(w, l.retryAfter)
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// WriteTooMany writes the 429 refusal.
func WriteTooMany(w http.ResponseWriter, retryAfter time.Duration) {
	secs := int64((retryAfter + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": "too many connections from this address"})
}
