// Package faultproxy is a small TCP proxy for fault tests: it sits between a
// client (the streamer server) and an upstream (PostgreSQL) and, on command,
// passes bytes, delays them, swallows them without closing anything
// (blackhole), resets connections, or closes one direction.
//
// # Overview
//
// [Start] listens on a loopback address and, for every accepted connection,
// dials the upstream with the given [DialFunc] (TCP, or the unix socket of a
// throwaway cluster); [StartFor] does so for a PostgreSQL URL and returns
// the URL through the proxy. Each proxied connection is a [Conn] with two
// directions, [Up] (client to upstream) and [Down] (upstream to client), each
// copied by a reader and a writer goroutine. A direction's mode is one of
//
//   - pass: bytes are forwarded as they arrive (the default);
//   - delay: each chunk is forwarded a fixed time after it was read;
//   - blackhole: bytes are read and dropped, and nothing is closed, so the
//     sender's writes succeed and no answer ever comes, as when packets are
//     lost on the way to a host that went away. Bytes dropped are gone:
//     passing again afterwards gives the receiver a corrupted stream, so a
//     test normally ends a blackhole by resetting the connection.
//
// Faults are set on one connection ([Conn.Set], [Conn.Reset],
// [Conn.CloseWrite]) or on all: [Proxy.SetAll] changes every open connection
// and the default for new ones, [Proxy.ResetAll] resets every open one, and
// [Proxy.RefuseNew] makes new connections be reset as soon as they are
// accepted, without dialing the upstream (a database that is down).
//
// A reset sets SO_LINGER to 0 on the client side before closing, so the
// client reads ECONNRESET rather than an orderly end of stream; the upstream
// side is closed (a unix socket has no reset). [Conn.Head] returns the first
// bytes the client sent, which for PostgreSQL contain the startup message,
// so a test can pick out a connection by its application_name.
//
// # Invariants
//
//   - Every goroutine the proxy starts is owned by it: [Proxy.Close] closes
//     the listener and every connection and returns after all of them have
//     exited. Close is safe to call twice.
//   - A mode change applies to the bytes read after it: chunks already
//     waiting out a delay keep their delay, but a blackhole set on a
//     direction drops every chunk not yet written.
//   - Within one direction bytes are forwarded in order, never duplicated;
//     only a blackhole drops them.
//   - A Conn is listed by [Proxy.Conns] from the moment its upstream is
//     dialed until both of its sockets are closed.
package faultproxy
