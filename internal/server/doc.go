// Package server is streamer's HTTP interface: the SSE subscription endpoint
// GET /events, the health endpoints and graceful shutdown.
//
// # Overview
//
// A GET /events request is validated (query size, streams, resume token,
// connection limit) before anything is written, so every refusal is a plain
// JSON error with the right status. An accepted request gets an sse.Conn
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
// Hostile clients are bounded by the http.Server's ReadHeaderTimeout,
// MaxHeaderBytes and IdleTimeout, by MaxQueryBytes on /events, and on
// POST /publish by a body size limit, a read deadline on the body and a
// bound on the requests handled at once. Config.Middleware wraps every
// route (authentication, CORS and per-address limits plug in there).
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
//   - A connection whose request headers are not complete within
//     ReadHeaderTimeout is closed; trickling bytes does not extend it.
//   - At most Publish.MaxConcurrent POST /publish requests are handled at
//     once; the others get 503 with Retry-After before their body is read.
package server
