// Package sse writes Server-Sent Events: the wire encoder and, per client
// connection, a bounded outbound queue drained by a single writer.
//
// # Overview
//
// Frames are encoded once with [AppendEvent], [AppendComment],
// [AppendRetry] and [AppendID] (a frame with only an id, which moves a
// client's last event ID without an event), and the same byte slice is
// handed to every subscribed connection.
//
// A [Conn] is one connection's bounded frame queue (frameQueue) plus one of
// two writers. Producers put frames on it with [Conn.Enqueue] (live
// delivery: never blocks, disconnects a client that falls behind) or
// [Conn.EnqueueWait] (replay: waits for room instead). A writer takes
// everything queued as one batch and writes it as one write.
//
// The writer wakes when a frame lands in an empty queue. A producer that
// queues a burst (the dispatcher's fan-out turn: one frame per event of a
// page, on every connection) uses [Conn.EnqueueHeld] instead, which does
// not wake it, and [Conn.Release] at the end of the burst: the burst then
// goes out in one write, where waking at its first frame would have
// written it in pieces while it was still being queued. Held frames are
// written anyway once they reach 64 KiB or half of MaxQueueBytes
// (whichever is less), or along with anything the writer writes for
// another reason; a frame queued with Enqueue behind held frames waits for
// the Release with them. A producer that releases only a few hijacked
// Conns per burst may use [Conn.ReleaseWrite] instead: it writes the held
// frames itself with one non-blocking write(2), sparing a hub worker's
// wake-up, and hands whatever that write does not take to the workers.
//
//   - The handler writer ([Conn.Run], state in handlerWriter) runs on the
//     HTTP handler's goroutine: it waits for frames, writes each batch as
//     one Write and one Flush under a write deadline, and writes a ": ping"
//     comment when the connection has been idle for [Options.Heartbeat].
//     HTTP/2 streams are always written this way.
//   - The hub writer (state in hubConn) serves an HTTP/1.1 connection taken
//     over from net/http: [Conn.Hijack] writes the response head and
//     [Conn.Attach]es the connection to a [Hub]. A fixed pool of workers
//     writes whichever Conns have frames queued, with a short deadline per
//     attempt so that a client whose socket buffer is full is set aside and
//     retried instead of holding a worker; a Conn that makes no progress
//     for WriteTimeout is closed. One sweeper writes heartbeats. Clients
//     that went away are noticed, on Linux, by one watcher goroutine
//     blocked on an epoll instance of the hub's own in which every
//     hijacked socket is registered once (EPOLLRDHUP, edge triggered:
//     closewatch_linux.go), so an open idle Conn costs no syscall at all
//     (the watcher's epoll_wait is a plain blocking system call, not the
//     runtime's netpoller: it parks one OS thread per running hub, which
//     the runtime replaces for its other goroutines); elsewhere the sweeper peeks at each Conn quiet for PeekInterval (one
//     non-blocking recv). An idle hijacked Conn therefore costs no
//     goroutine and no buffer: a few hundred bytes of state.
//
// A connection ends in one of three ways: [Conn.Close] drops whatever is
// queued; [Conn.CloseAfter] lets the writer write what is queued plus a
// final frame first; a write error, a full queue or the end of Run's
// context closes it with that cause. [Conn.Done] and [Conn.Err] report the
// end to everyone else.
//
// # Delivery lag
//
// A live event's frame is queued with [Conn.EnqueueAt] or
// [Conn.EnqueueHeld] and its commit time (the database's clock). The queue keeps those commit times beside the
// frames, as unix nanoseconds in a slice reused like the frame slice, and
// the writer takes them with the batch. Once the whole batch is written,
// the writer reports, for each of them, the time since the commit to
// [Options.Lag]: one clock read per batch, one observation per event per
// connection, no allocation and no lock beyond the queue's own. So the lag
// includes the time a frame waited in the queue (held until Release, too)
// and in a stalled write. A
// batch that fails, times out, or is dropped by a close (slow consumer,
// Close) is not observed: its frames never reached the client. Frames
// queued with Enqueue, EnqueueWait (replay), heartbeats and CloseAfter's
// final frame carry no commit time and are never observed.
//
// A [Hub] follows the lifecycle contract of package startstop: Start runs
// its workers and sweeper, Stop ends them and closes every Conn still
// attached.
//
// # Invariants
//
//   - Enqueue, EnqueueHeld and Release never block and never wait on the
//     network: they take one mutex that is only ever held for a few slice
//     operations. ReleaseWrite never blocks either: besides that mutex it
//     makes at most one non-blocking write(2), with no deadline, and
//     leaves any rest, error or close to the hub's workers.
//   - A frame queued with EnqueueHeld does not wake the writer: it is
//     written after the producer's next Release, or before it when the
//     held bytes queued reach min(64 KiB, MaxQueueBytes/2) or the writer
//     writes for another reason. A hub worker done with a batch gives a
//     Conn up when only held frames below that bound are queued.
//   - Frames are never modified, and are not retained after they are written
//     or the connection closes: callers may share one frame between any
//     number of connections.
//   - A Conn has one writer at a time: Run is the only goroutine that
//     writes to, flushes or sets deadlines on the ResponseWriter, and after
//     Attach the ResponseWriter is never touched again. An attached Conn is
//     written by at most one goroutine at a time: the one that set its
//     sched flag, a hub worker or a caller of ReleaseWrite.
//   - Bytes queued and not yet written never exceed MaxQueueBytes, except
//     for a single frame accepted into an empty queue and the final frame
//     of CloseAfter.
//   - Frames are written in the order they were accepted.
//   - Options.Lag is called only by a Conn's writer, after a write that
//     put every frame of its batch on the connection, once for each frame
//     of the batch that was queued with a commit time; never from Enqueue.
//   - A Conn is closed at most once: the first cause wins, Done is closed
//     exactly when Err becomes non-nil, and Err never changes afterwards.
//   - A Conn owns no goroutine: its only goroutine is the caller of Run, or
//     none once attached. An idle Conn holds no write buffer (the
//     coalescing buffer is pooled).
//   - An attached Conn's onClose runs exactly once, before its network
//     connection is closed: on a hub worker, or on the goroutine that stops
//     the hub, or (when the hub is not running) on the goroutine calling
//     Attach, before Attach returns. Never on a goroutine that merely
//     called Close, Enqueue or ReleaseWrite (which may be the dispatcher).
//   - An attached Conn closed as a slow consumer has its network
//     connection aborted (SO_LINGER 0: RST, abort.go), so no orphaned
//     socket keeps its send buffer; every other end is an orderly close.
//   - A watched Conn (Linux) is never peeked at; it is closed with
//     ErrPeerClosed as soon as the kernel reports its client's FIN or
//     reset, and an event for a Conn already finished is ignored (Conns
//     are named by ids that are never reused, not by descriptors).
//   - A Hub runs its workers, sweeper and close watcher only between Start and Stop; a
//     Conn attached while it is not running is closed with ErrHubStopped
//     at once, and Stop returns only after every attached Conn finished.
package sse
