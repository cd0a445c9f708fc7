// Package sequencer records ticks: in the ticks ordering mode
// (migrations/007_ticks.sql) it numbers the publishing transactions that
// committed since the last tick, every few milliseconds, one server at a
// time. The argument for the order is in internal/dispatch/doc.go, "Ticks".
//
// # Overview
//
// A [Sequencer] holds one dedicated connection. On it, it waits for the
// session-level advisory lock (LockClass, SequencerLockID): pg_advisory_lock
// blocks until the holder's session ends, so when the sequencing server
// dies (its connection closes) another takes over at once. A server that
// goes silent instead (frozen, or cut off without PostgreSQL seeing its
// connection close) loses the lock after Config.SilenceTimeout (10s):
// PostgreSQL ends a sequencer session that has been idle that long
// (idle_session_timeout, PostgreSQL 14 and later, and
// idle_in_transaction_session_timeout), and so also a waiting session
// granted the lock after its server went away. The server notices a
// silent TCP connection itself (Linux): SilenceTimeout after a tick that
// gets no answer (TCP_USER_TIMEOUT), and a quarter of it later while it
// waits for the lock (a keepalive probe at SilenceTimeout of quiet, the
// connection ended when the next finds it still unanswered). Holding the
// lock, it calls streamer.tick() in a loop: after a tick that numbered
// something it waits Interval (5ms), and keeps to Interval while ticks find
// nothing for Linger (100ms) after that, so that publishers committing every
// few milliseconds never wait for a backed-off tick; then it doubles the
// wait up to IdleInterval (20ms). An empty tick is read-only (no lock, no
// xid, no WAL): after a tick that numbered something the database answers
// up to one per Interval for Linger, then a few dozen a second. In
// trigger mode
// (tick() returns NULL) it waits ModeInterval and asks again, so a
// database switched to ticks while the server runs is served. A tick that
// numbered transactions NOTIFYs "streamer" in its own transaction with the
// tick's events in the payloads (up to seventeen notifications;
// migrations/010_tick_parts.sql), which reach every server's listener,
// this one's too: each dispatcher fans the tick out from them without
// reading, and reads only for what they left out or when it missed one. (The sequencing server
// does not also hand its dispatcher the tick directly: the notification
// already serves it, and before payloads doing so made two reads per tick
// and measured no faster; docs/benchmarks.md, "Ordering modes".)
//
// In the transaction of its first tick of a session in ticks mode it
// records its backend in streamer.ordering.sequencer_pid (dispatchers
// apply tick notifications from that backend alone) and NOTIFYs
// [Announcement], on which every dispatcher reads the record again before
// it trusts another note: the PID it trusted before may belong to any
// session once the old sequencer's backend is gone. That tick's own
// notifications commit with the record, so they are trusted too.
//
// # Poke
//
// [Sequencer.Poke] is how this server's POST /publish (internal/batch,
// Config.OnCommit) says a publishing transaction has committed. A leading
// sequencer in ticks mode that is waiting longer than Interval (backed off
// while idle, up to IdleInterval) then ticks Interval after its last tick
// ended, or at once when that has passed, so the first event after an
// idle spell does not wait out the backoff. Pokes never bring ticks closer
// together than Interval: a wait of Interval (while events arrive, and for
// Linger after) is not shortened at all. Pokes coalesce in a channel of
// one, and each tick first empties it (every poke made before the tick is
// served by its snapshot). Publishers on other servers, and SQL
// publishers, do not poke: they wait for the backed-off tick as before.
//
// # Metrics
//
// Config.Metrics hears of each tick in ticks mode (numbered or empty, with
// what it numbered and how long the round trip took; never the trigger
// mode's asks), of how full PostgreSQL's NOTIFY queue is (read in the same
// statement as every tick and mode check: a session that LISTENs in a
// transaction left open fills it, and then every NOTIFY fails), of each
// taking of the lock and of each error; package
// metrics turns them into streamer_sequencer_* series, with
// streamer_sequencer_leading read from [Sequencer.Leading]. Per tick that
// is a few atomic operations and no allocation; the wait reuses one timer
// per session.
//
// On an error it closes the connection (which releases the lock), waits
// (capped exponential backoff) and starts again.
//
// # Invariants
//
//   - In ticks mode a session records its backend (and announces it) in
//     the transaction of its first tick, so before or with its first tick
//     notification.
//   - Correctness never depends on the lock: ticks serialise on the
//     streamer.ordering row, so two sequencers, or a sequencer and
//     streamer.head(), never number a transaction twice or skip one. The
//     lock only keeps the other servers from doing the same work.
//   - PostgreSQL ends a sequencer's session (and so releases the lock)
//     once it has heard nothing on it for SilenceTimeout, which is at
//     least five times the longest wait between ticks: a live sequencer
//     never loses it that way.
//   - At most one goroutine and one connection per Sequencer exist at any
//     time; after Stop returns there are none (package startstop).
//   - Leading reports true only while this sequencer holds the lock on a
//     live connection.
//   - Poke never blocks, and does nothing unless this sequencer leads and
//     its last tick found ticks mode. A poke never starts a tick sooner
//     than Interval after the previous tick ended.
//   - A nil Config.TestSignals is inert; so is a nil Config.Metrics.
package sequencer
