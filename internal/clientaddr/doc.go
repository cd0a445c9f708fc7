// Package clientaddr finds a request's client address behind trusted
// proxies and limits the concurrent connections of each address.
//
// # Overview
//
// A [Resolver] is built from STREAMER_TRUSTED_PROXIES. For a request whose
// peer is not a trusted proxy, the client is the peer and X-Forwarded-For
// is ignored. When the peer is trusted, X-Forwarded-For is read from the
// right, and the client is the first address that is not a trusted proxy.
//
// A [Limiter] is built from STREAMER_MAX_CONNECTIONS_PER_IP and answers 429
// with Retry-After beyond it.
//
// # Where the server calls it
//
//	res, err := clientaddr.NewResolver(trustedProxies) // STREAMER_TRUSTED_PROXIES, split at commas
//	lim := clientaddr.NewLimiter(cfg.MaxConnectionsPerIP, 0, res.Addr)
//	r.Use(res.Middleware)                 // every route: logs use FromContext
//	addr, _ := clientaddr.FromContext(r.Context())
//	release, ok := lim.Acquire(addr) // in GET /events; release when the stream ends
//
// The server calls [Limiter.Acquire] itself in GET /events and releases
// the slot when the stream ends: a hijacked stream outlives its handler,
// so [Limiter.Middleware], which holds the slot only until the handler
// returns, suits handlers that serve the whole request themselves. Log
// lines take the client address from [FromContext].
//
// # Invariants
//
//   - X-Forwarded-For is believed only when the peer is a trusted proxy,
//     and then only as far left as the hops are trusted proxies: a client
//     cannot choose its address by sending the header itself.
//   - An unparsable hop stops the walk; the last trusted address stands
//     for the client.
//   - IPv4-mapped IPv6 addresses and zones are normalised away, so one
//     client has one address (and one count).
//   - A Limiter's count for an address is the number of acquired and not
//     yet released slots; an address with none is not in the map, so the
//     map does not grow with addresses seen.
//   - Max 0 means no limit; the zero address (no IP peer) is never limited.
package clientaddr
