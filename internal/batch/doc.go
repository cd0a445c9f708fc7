// Package batch is streamer's publishing pipeline: it coalesces concurrent
// publishers' events into one transaction each (group commit). POST /publish
// and the public publisher package both run on it.
//
// # Overview
//
// Callers submit groups of events (a unit: one HTTP request, one Publish
// call) to a bounded FIFO queue. One goroutine, the flusher, takes a batch
// of whole units from the head of the queue when it holds MaxBatchEvents
// events or MaxBatchBytes bytes, when its oldest unit has waited MaxDelay,
// or on Flush (with no delay configured, as soon as a batch slot is free),
// and hands it to a goroutine of its own that commits it. MaxDelay is a
// bound rather than a fixed wait: a Publish caller blocks until its batch
// is resolved, so when as many units are queued as the batches resolved
// since the last one taken had Publish callers, the callers it expects
// are back and the batch goes at once (callersBack). When MaxDelay passes
// first, some did not come back, and the expectation is dropped.
// Enqueued units expect nobody back.
//
// A batch is committed like this:
//
//	BEGIN; INSERT INTO streamer.events ... SELECT FROM unnest($1, $2, $3) WITH ORDINALITY ...   -- one round trip
//	COMMIT                                                                                    -- a second
//
// One INSERT statement per batch means one NOTIFY per batch (the trigger is
// per statement) and one commit-order stamp. Each caller gets its ids after
// the COMMIT, or an error.
//
// Up to MaxInFlight batches (default 2) are under way at once, on separate
// connections, so that one batch's INSERT (the per-row work) runs while the
// batch before it commits, and their WAL flushes can be shared. A batch
// sends COMMIT only once the batch before it is resolved (committed or
// failed for good), so batches commit in queue order even when one of them
// is retried. Row ids are drawn at INSERT time, so ids need not follow
// queue order across batches; delivery order (commit, then id) does.
//
// # Failures
//
// A transient failure (connection loss, serialization failure, deadlock,
// admin shutdown, too many connections, timeouts: see classify) is retried
// with exponential backoff and jitter, as long as the caller waits: a unit
// whose caller's context ended before its COMMIT was sent is dropped (a
// transaction that already holds it is rolled back and sent again without
// it), and the caller is told it was not published; a caller that gives up
// while its COMMIT is under way is told ErrOutcomeUnknown. Enqueued units
// have no deadline of their own; they are retried until the run ends (Stop,
// or Close giving up on them), and the bounded queue pushes back on their
// producers meanwhile (ErrFull).
//
// A rejection (the database refused a row: CHECK violation, bad encoding)
// is bisected: the batch's units are split in halves and each half is
// committed on its own, recursively, until the unit that broke the rule
// fails alone with a *RuleError naming it; every other unit commits. Events
// are validated in Go with the same rules before they are queued, so a
// rejection only happens if the rules ever diverge. Any other server error
// fails the whole batch.
//
// # Idempotency
//
// When the connection dies during COMMIT the client cannot know whether
// the transaction committed, and blindly retrying could publish the batch
// twice. The idempotency key is per batch, and it is the transaction's own
// 64-bit id (xid8), learnt from the INSERT's round trip before COMMIT is
// sent. After a failed COMMIT the flusher closes the connection and asks,
// on another one, SELECT pg_xact_status(txid): "committed" means the batch
// is done (the ids from the INSERT are its ids), "aborted" means it is safe
// to retry, "in progress" means the old backend is still running it, so it
// is terminated (only if it still runs that transaction) and the question
// repeated. The batch is never re-sent while its outcome is unknown. This is
// what pg_xact_status exists for, and it costs publishers nothing: no key
// column or table to write in every transaction and to expire later, at the
// price of a second round trip per batch. If the outcome cannot be learnt
// before Close's deadline the callers get ErrOutcomeUnknown rather than a
// guess.
//
// # Lifecycle
//
// A Batcher follows package startstop. Start checks that the database
// answers and runs the flusher until Stop is called, Start's context ends
// (which is the same as Stop) or Close has drained the queue. Stop ends a
// run at once: the batches under way are abandoned (their callers learn
// ErrOutcomeUnknown or ErrClosed) and the queue is failed with ErrClosed.
// Close ends it gracefully: intake stops, everything queued is sent, and
// only what is left when Close's context ends is cut off as by Stop. Either
// way the Batcher can be started again; while no run is under way every
// submission fails with ErrClosed. A server that drains its publishers after
// the signal that begins its shutdown starts the Batcher with a context that
// outlives that signal and calls Close.
//
// # Invariants
//
//   - A unit's events commit in one transaction or not at all; a unit is
//     never split across batches.
//   - Units commit in queue order: a batch's COMMIT waits until the batch
//     before it is resolved, a failed batch is retried before anything
//     behind it commits, and bisection commits the halves in order. So
//     events enqueued by one goroutine are delivered in the order it
//     enqueued them.
//   - A batch is re-sent only when its previous attempt is known not to
//     have committed.
//   - Every attempt ends within Config.AttemptTimeout; one that runs it out
//     closes the pool's connections (pgxpool.Pool.Reset), so that a retry
//     does not meet another connection gone silent behind the same path.
//   - Submission never blocks: a full queue fails at once with ErrFull.
//   - Every accepted unit is resolved exactly once: ids, or an error to its
//     waiter, to OnError, or in Close's report (logged instead when a run
//     ends by Stop or by its context).
//   - Submissions succeed only while a run is under way and not closing.
//   - A caller told "not published" (a context error alone, ErrClosed,
//     ErrFull, a *RuleError) will never see its events committed.
//   - Config.Metrics is told of each committed transaction once, with its
//     number of events, before any of its callers is resolved; never of
//     a transaction that did not commit. So is Config.OnCommit, when set.
package batch
