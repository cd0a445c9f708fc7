// Package server is streamer's HTTP interface: the SSE subscription endpoint
// GET /events, the health endpoints and graceful shutdown.
//
// # Overview
//
// A GET /events request is validated (query size, streams, resume token,
// per-address limit, authorization, connection limit) before anything is
// written, so every refusal is a plain JSON error with the right status.
// Authorization (Config.Auth, an *auth.Authorizer) decides every requested
// stream before anything is subscribed; 401 and 403 carry
// WWW-Authenticate (auth.WriteError). The principal's audience keys go
// with the subscription (nil for an anonymous connection). A connection
// authorised by a token with exp gets a timer (time.AfterFunc: one runtime
// timer, no goroutine) that ends it at exp plus auth.Leeway with an
// event: streamer.reauth after what was already queued. An accepted request gets an sse.Conn
// whose queue already holds the first comment and the retry field; the
// dispatcher takes the subscriber, and the stream runs until the client
// leaves, the subscriber is dropped for being slow, or the server drains.
//
// An HTTP/1.1 stream is taken over from net/http (sse.Conn.Hijack writes
// the response head and hands the connection to an sse.Hub), so an idle
// stream holds no goroutine and none of net/http's buffers; the body runs
// until the connection closes, and the handler returns at once. HTTP/2
// streams, and every stream with NoHijack, are written by their handler
// goroutine (sse.Conn.Run).
//
// Config.SendBuffer, when set, is the SO_SNDBUF of every accepted socket
// (a listener wrapper, sendbuffer.go): the kernel memory a client that
// stops reading can pin is then bounded instead of autotuned to MiBs.
//
// After a reconnect storm (Config.BurstConnections streams taken over,
// then arrivals slowing down) the server runs one garbage collection
// (burstgc.go): each hijack leaves net/http's per-connection set-up as
// garbage, which an idle server would otherwise keep in RSS for minutes.
//
// Hostile clients are bounded by the http.Server's ReadHeaderTimeout,
// MaxHeaderBytes and IdleTimeout, by MaxQueryBytes on /events, and on
// POST /publish by a body size limit, a read deadline on the body and a
// bound on the requests handled at once. Config.Middleware wraps every
// route before routing (clientaddr's Resolver, CORS). The per-address
// limit (Config.PerAddress) is not a middleware: a hijacked stream
// outlives its handler, and its slot is held until the stream ends.
//
// POST /publish asks Auth for a grant from the headers before the body is
// read, and checks every event's stream against it after decoding.
//
// The Server follows package startstop's lifecycle: Start listens
// synchronously and serves in the background; Stop, Shutdown(ctx) and the
// end of Start's context drain it. Draining marks the server not ready,
// ends every stream with a streamer.shutdown event after what was already
// queued, stops accepting, waits for the streams until the deadline
// (Shutdown's context, else Config.ShutdownTimeout), then closes what is
// left and returns. If serving fails, the server drains and stops by
// itself: Stopped is closed and Err names the failure.
//
// # Invariants
//
//   - No server-wide WriteTimeout: streams are long-lived; each write has
//     its own deadline in sse.Conn.
//   - Every accepted stream is unsubscribed from the dispatcher exactly
//     once, after its Conn closed: by its handler before it returns, or,
//     for a hijacked stream, by the hub's onClose (on a hub worker, or on
//     the goroutine stopping the hub).
//   - The number of open streams never exceeds MaxConnections; it counts a
//     stream from its admission until that unsubscription.
//   - /readyz answers 503 from the moment a drain begins or serving fails
//     until the next Start.
//   - The drain never waits past its deadline for streams: after it the
//     hub is stopped (a connection hijacked later is refused and closed at
//     once) and net/http's connections are closed.
//   - The collector of bursts is one goroutine per run, ended and waited
//     for by the drain before anything else stops.
//   - With SendBuffer set, every accepted connection has its SO_SNDBUF set
//     before net/http reads from it.
//   - A connection whose request headers are not complete within
//     ReadHeaderTimeout is closed; trickling bytes does not extend it.
//   - A request refused by authorization (any stream of it) never reaches
//     the dispatcher, and a POST /publish refused by its headers never has
//     its body read; each refusal is counted (Counters.AuthFailed).
//   - No log line holds a token: URLs are logged through
//     auth.RedactRequestURI, headers never; a connection's log names its
//     token's sub and jti only.
//   - A connection with a token expiring at exp is closed after a
//     streamer.reauth event, not before exp plus auth.Leeway; its timer is
//     stopped when the stream ends earlier.
//   - A per-address slot is held from admission until the stream's
//     unsubscription (or released at once on a refusal).
//   - At most Publish.MaxConcurrent POST /publish requests are handled at
//     once; the others get 503 with Retry-After before their body is read.
package server
