// Package metrics serves streamer's Prometheus metrics from a registry of
// its own (never the global default one).
//
// # Overview
//
// New builds a *Metrics: gauges read from the running services at scrape
// time (Sources), and the counters and histograms the services report
// into. Each service declares the few methods it calls as a small
// interface of its own (dispatch.Metrics, listener.Metrics,
// batch.Metrics), defaulting to a no-op, so tests and other callers need
// nothing; cmd/streamer passes the one *Metrics to all of them.
//
// The delivery path pays no lock and no allocation per delivery: the
// dispatcher counts the frames it queues in a plain integer of its own
// goroutine and adds them here once per read (and once per replay page),
// and the SSE writers observe the delivery lag after each write batch.
// Counter adds and histogram observations are atomic operations
// (client_golang's lock-free hot/cold counts).
//
// # Delivery lag
//
// streamer_delivery_lag_seconds runs from the event's commit time as the
// database recorded it (streamer.commits.committed_at, clock_timestamp()
// in the deferred trigger that numbers the transaction at COMMIT) to the
// end of the write that put its frame on a subscriber's socket. The
// dispatcher queues a live event's frame with its commit time
// (sse.Conn.EnqueueHeld), and the connection's writer observes it once the
// batch holding it is written (see package sse): once per live event per
// connection, including the time the frame waited in the connection's
// queue. Replayed events, and frames dropped by a close or a failed write,
// are not observed. A clock difference between the database host and this
// one adds to (or is clamped out of) the value.
//
// # Sequencer
//
// streamer_sequencer_leading is 1 on the one server whose sequencer holds
// the sequencer lock (in either ordering mode: in trigger mode it only asks
// for the mode). The ticks it records in ticks mode are counted by result
// (streamer_sequencer_ticks_total{result="numbered"|"empty"}), with the
// transactions they numbered (streamer_sequencer_commits_total) and their
// round trip (streamer_sequencer_tick_duration_seconds); takeovers and
// errors are counted too. Only the leading server's tick series move.
//
// # Series reported later
//
// Some methods have no caller yet; their series read zero until the
// packages that own the events call them, each with one line:
//
//   - Wrote(frames, bytes): sse, once per write batch to a socket.
//   - SlowConsumerDisconnected(): sse (or the server's close callback),
//     where a write makes no progress within the write timeout. The
//     queue-full case (sse.ErrSlowConsumer from Enqueue, which only the
//     dispatcher's live path can cause) is counted by the dispatcher
//     already; counting it again elsewhere would count it twice.
//   - AuthFailed(): server, at each 401 or 403 of /events or /publish.
//   - ConnectionRefused(reason): server, at each connection limit or
//     drain refusal.
//   - Pruned(n): retention, after each prune step with the events deleted.
//
// # Invariants
//
//   - Every series is prefixed streamer_, go_ or process_ and has a help
//     text; counters end in _total, histograms name their unit (_seconds,
//     _events), byte counts say _bytes.
//   - A nil source function is skipped, never called.
//   - Every method is safe on a nil *Metrics and does nothing there.
//   - Label values come from fixed sets created in New (read kind, refusal
//     reason, tick result); a method never creates a series.
package metrics
