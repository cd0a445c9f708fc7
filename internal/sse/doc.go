// Package sse writes Server-Sent Events: the wire encoder and, per client
// connection, a bounded outbound queue drained by a single writer.
//
// # Overview
//
// Frames are encoded once with [AppendEvent], [AppendComment] and
// [AppendRetry], and the same byte slice is handed to every subscribed
// connection. A [Conn] wraps one http.ResponseWriter. Producers put frames on
// it with [Conn.Enqueue] (live delivery: never blocks, disconnects a client
// that falls behind) or [Conn.EnqueueWait] (replay: waits for room instead).
// [Conn.Run], called on the HTTP handler's goroutine, waits for frames and
// writes everything queued as one Write followed by one Flush, under a write
// deadline, and writes a ": ping" comment when the connection has been idle
// for [Options.Heartbeat].
//
// A [Hub] serves detached Conns instead: HTTP/1.1 connections taken over from
// net/http after the response head ([Conn.Attach]). A fixed pool of workers
// writes whichever Conns have frames queued, with a short deadline per
// attempt so that a client whose socket buffer is full is set aside and
// retried instead of holding a worker; a Conn that makes no progress for
// WriteTimeout is closed. One sweeper writes heartbeats and notices clients
// that went away with a non-blocking peek. An idle detached Conn therefore
// costs no goroutine and no buffer: a few hundred bytes of state.
//
// A connection ends in one of three ways: [Conn.Close] drops whatever is
// queued; [Conn.CloseAfter] lets Run write what is queued plus a final frame
// first; a write error, a full queue or the end of Run's context closes it
// with that cause. [Conn.Done] and [Conn.Err] report the end to everyone else.
//
// # Invariants
//
//   - Enqueue never blocks and never waits on the network: it takes one
//     mutex that is only ever held for a few slice operations.
//   - Frames are never modified, and are not retained after they are written
//     or the connection closes: callers may share one frame between any
//     number of connections.
//   - Run is the only goroutine that writes to, flushes or sets deadlines on
//     the ResponseWriter; nothing else in this package touches it. A
//     detached Conn is written by at most one hub worker at a time (the one
//     that set its sched flag).
//   - Bytes queued and not yet written never exceed MaxQueueBytes, except
//     for a single frame accepted into an empty queue and the final frame
//     of CloseAfter.
//   - Frames are written in the order they were accepted.
//   - A Conn is closed at most once: the first cause wins, Done is closed
//     exactly when Err becomes non-nil, and Err never changes afterwards.
//   - A Conn owns no goroutine: its only goroutine is the caller of Run, or
//     none once detached. An idle Conn holds no write buffer (the
//     coalescing buffer is pooled).
//   - A detached Conn's onClose runs exactly once, before its network
//     connection is closed: on a hub worker, or on the goroutine that stops
//     the hub, or (when the hub is not running) on the goroutine calling
//     Attach, before Attach returns. Never on a goroutine that merely called
//     Close or Enqueue (which may be the dispatcher).
//   - A Hub runs its workers and sweeper only between Start and Stop (see
//     package startstop); a Conn attached while it is not running is closed
//     with ErrHubStopped at once.
package sse
