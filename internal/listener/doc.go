// Package listener turns PostgreSQL notifications on the "streamer" channel
// into wake-ups for the dispatcher.
//
// # Overview
//
// In the trigger ordering mode the schema's statement-level trigger runs
// pg_notify on "streamer" once per INSERT statement into streamer.events;
// in the ticks mode each tick that numbered transactions NOTIFYs once
// (internal/sequencer), so one notification serves every commit of a tick. A [Listener] holds one dedicated
// connection (a *pgx.Conn of its own, never one borrowed from a pool, because
// LISTEN is session state and a pooled session would be handed to someone
// else) that has run LISTEN on that channel, and one goroutine that waits for
// notifications on it and calls [Waker.Wake] or [Waker.Notified].
//
// A trigger mode notification carries no data; it only says "something was
// committed, go and read". So the listener coalesces those: it calls Wake
// at the first notification (its latency is not held back), drains every
// further notification that has already arrived, and calls Wake once more
// if any of them was empty too. A burst of a thousand NOTIFYs becomes a
// handful of wakes, and the dispatcher folds wakes that arrive while it
// reads into one more read. (Waking once per notification instead, without
// the drain's timed waits, was measured in the streams benchmark in trigger
// mode: the server's CPU did not change, the dispatcher read 44% more often
// and PostgreSQL's CPU per delivery rose 14%; so the drain stays.) A tick's
// notifications carry the tick's events (migrations/010_tick_parts.sql):
// each such payload is handed to [Waker.Notified] as it arrives, in order,
// with the PID of the backend that sent it (the dispatcher trusts only the
// leading sequencer's), and the dispatcher serves it without a read.
//
// When no notification arrives for Config.PingInterval the connection is
// pinged, so a dead one is noticed. On any error the listener marks itself
// disconnected, closes the connection, waits (capped exponential backoff with
// jitter), reconnects, runs LISTEN again and calls Wake, because events may
// have been committed while nobody was listening (and a sequencer may have
// announced itself: internal/dispatch reads the sequencer's backend again
// on a Wake before it trusts a tick's notification). The same wake-all
// happens after the first LISTEN in [Listener.Start].
//
// Lifecycle is package startstop's: Start makes the first connection
// synchronously (a bad DSN fails Start) and returns once the goroutine runs;
// the goroutine runs until Stop is called (its context's cause is then
// startstop.ErrStop) or Start's context ends, and Stop blocks until it has
// exited and the connection is closed.
//
// # Reading notifications without losing the connection
//
// pgx closes a connection whose read fails, except when the failure is a
// timeout. A context deadline on WaitForNotification is turned by pgconn's
// DeadlineContextWatcherHandler into a net.Conn read deadline, so it surfaces
// as a timeout and the connection stays usable; a partly read message is kept
// and finished by the next read. The listener relies on that for both the
// ping interval and the drain, and pins the handler in its connection config
// so a DSN or default change cannot swap in the cancel-request handler. A
// context that is already done is no use for draining: WaitForNotification
// then returns at once without reading anything from the socket.
//
// # Invariants
//
//   - At most one goroutine and one connection per Listener exist at any
//     time; after Stop returns there are none.
//   - Every successful LISTEN (the first and every reconnect) is followed by
//     exactly one Wake, before any notification received on that
//     connection is handed over, so nothing committed (or announced) while
//     the listener was not listening waits for the next notification.
//   - Every received notification with a payload is handed to Notified at
//     once, in the order received; every one without is followed, after at
//     most the short drain window, by a Wake. Notifications are never
//     dropped; empty ones are merged.
//   - Wake and Notified are called only from the listener's goroutine (or
//     Wake from Start before that goroutine exists), never concurrently.
//   - Connected reports true only between a successful LISTEN and the first
//     error on, or closing of, that connection.
//   - Stop is safe before Start, twice, and concurrently; Start on a running
//     Listener is a no-op; a stopped Listener can be started again.
//     Cancelling Start's context stops the Listener as Stop does.
//   - A nil Config.TestSignals is inert; signals cost nothing in production.
//   - Config.Metrics is told of every successful LISTEN after a lost
//     connection, once, and of no other (not the first, in Start).
package listener
