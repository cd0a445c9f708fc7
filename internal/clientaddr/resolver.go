package clientaddr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds a request's client address: the peer's, or, when the peer
// is a trusted proxy, the rightmost X-Forwarded-For address that is not a
// trusted proxy.
type Resolver struct {
	trusted []netip.Prefix
}

// NewResolver parses trusted proxies: CIDRs or single addresses
// (STREAMER_TRUSTED_PROXIES, comma-separated). An empty list trusts nobody.
func NewResolver(trusted []string) (*Resolver, error) {
	r := &Resolver{}
	for _, s := range trusted {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(s)
			if err == nil && a.Zone() != "" {
				err = errors.New("zones are not supported")
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", s, err)
		}
		r.trusted = append(r.trusted, unmapPrefix(p.Masked()))
	}
	return r, nil
}

// unmapPrefix turns ::ffff:a.b.c.d/n (n >= 96) into a.b.c.d/(n-96), so
// that an IPv4 client reached over an IPv6 socket matches IPv4 CIDRs.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

func (r *Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Addr returns r's client address. It is the zero Addr only when the
// peer's address itself cannot be parsed (a test request, a unix socket).
func (res *Resolver) Addr(r *http.Request) netip.Addr {
	peer := parseHostPort(r.RemoteAddr)
	if !peer.IsValid() || len(res.trusted) == 0 || !res.isTrusted(peer) {
		return peer
	}
	hops := forwardedFor(r.Header)
	// Walk from the right: each hop was appended by the one to its right,
	// so the addresses are believable only as far as the proxies are
	// trusted. The first untrusted one is the client.
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHost(hops[i])
		if !a.IsValid() {
			// A trusted proxy wrote garbage (or passed on a client's):
			// nothing left of it is believable. The last trusted hop
			// stands for the client.
			return client
		}
		client = a
		if !res.isTrusted(a) {
			return a
		}
	}
	// Every hop is a trusted proxy: the leftmost is as far as we can see.
	return client
}

// forwardedFor returns every X-Forwarded-For entry, header lines in order.
func forwardedFor(h http.Header) []string {
	var hops []string
	for _, line := range h.Values("X-Forwarded-For") {
		for _, f := range strings.Split(line, ",") {
			hops = append(hops, strings.TrimSpace(f))
		}
	}
	return hops
}

// parseHostPort parses "host:port" (RemoteAddr) or a bare address.
func parseHostPort(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return norm(ap.Addr())
	}
	return parseHost(s)
}

// parseHost parses an X-Forwarded-For entry: an address, "[v6]", or either
// with a port (some proxies add one).
func parseHost(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return norm(a)
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return norm(ap.Addr())
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return norm(a)
		}
	}
	return netip.Addr{}
}

// norm unmaps IPv4-in-IPv6 and drops zones, so that one client has one
// address.
func norm(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

type ctxKey struct{}

// Middleware stores each request's client address in its context for
// FromContext (logs, the per-address limit).
func (res *Resolver) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, res.Addr(r))))
	})
}

// FromContext returns the address Middleware stored.
func FromContext(ctx context.Context) (netip.Addr, bool) {
	a, ok := ctx.Value(ctxKey{}).(netip.Addr)
	return a, ok
}
