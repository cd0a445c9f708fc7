// Package server is streamer's HTTP interface: the SSE subscription endpoint
// GET /events, the health endpoints and graceful shutdown.
//
// # Overview
//
// A GET /events request is validated (streams, resume token, connection
// limit) before anything is written, so every refusal is a plain JSON error
// with the right status. An accepted request gets an sse.Conn whose queue
// already holds the first comment and the retry field; the dispatcher takes
// the subscriber, and the handler's goroutine then runs the Conn's writer
// until the client leaves, the subscriber is dropped for being slow, or the
// server drains.
//
// An HTTP/1.1 stream is then taken over from net/http (hijacked): the
// handler writes the response head itself and hands the connection to an
// sse.Hub, so an idle stream holds no goroutine and none of net/http's
// buffers; the body runs until the connection closes. HTTP/2 streams, and
// every stream with NoHijack, are written by their handler goroutine.
//
// Draining (Shutdown) marks the server not ready, ends every stream with a
// streamer.shutdown event after what was already queued, stops accepting,
// and waits for the handlers within the caller's deadline.
//
// # Invariants
//
//   - No server-wide WriteTimeout: streams are long-lived; each write has
//     its own deadline in sse.Conn.
//   - A handler unsubscribes from the dispatcher before it returns.
//   - The number of open streams never exceeds MaxConnections.
package server
