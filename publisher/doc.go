// Package publisher publishes events to streamer from Go services that
// write to PostgreSQL directly, without going through POST /publish.
//
// # Overview
//
// Every publishing transaction on PostgreSQL 15 takes a global lock through
// its commit because of the NOTIFY that wakes the servers, so commits that
// publish are serialised, and throughput is decided by how many events each
// commit carries. A [Publisher] coalesces the events of concurrent callers
// into one transaction with one multi-row INSERT (group commit): a batch is
// sent when it holds [Config].MaxBatchEvents events or MaxBatchBytes bytes,
// when its oldest event has waited MaxDelay, or on [Publisher.Flush]. A
// Publish caller waits for its batch, so once the callers the last batches
// answered have called again nobody else is expected: the batch is then
// sent without waiting out MaxDelay, which triples the throughput of
// callers publishing in a loop (docs/benchmarks.md).
//
//   - [Publisher.Publish] waits until the event has committed and returns
//     its id; [Publisher.PublishAll] does the same for several events
//     atomically.
//   - [Publisher.Enqueue] returns at once; failures are reported to
//     [Config].OnError, and [Publisher.Close] reports what it could not
//     deliver before its deadline.
//   - [PublishTx] publishes inside a transaction of your own (outbox style):
//     the events exist only if that transaction commits.
//
// # Delivery semantics
//
// The queue is bounded: when it is full, Publish and Enqueue fail at once
// with [ErrFull]; nothing is dropped silently and nothing blocks without
// bound. Transient database failures (connection loss, serialization
// failure, deadlock, administrator shutdown) are retried with exponential
// backoff and jitter, for as long as the caller's context allows (for
// enqueued events, until Close). An event that breaks one of the table's
// rules fails alone with a [*RuleError] naming the rule; the others in its
// batch commit. When the connection dies during COMMIT, the Publisher asks
// the database whether that transaction committed (pg_xact_status of its
// transaction id) before retrying, so an event is never published twice.
// Events enqueued by one goroutine are committed in the order it enqueued
// them.
//
// # From other languages: SQL
//
// SQL is streamer's primary publishing interface. One event:
//
//	SELECT streamer.publish('orders:42', '{"status":"paid"}', event => 'order.paid');
//	SELECT streamer.publish('user:7', '...', audience => ARRAY['user:7', 'team:3']);
//
// An event's audience ([Event.Audience], the audience text[] column) limits
// who sees it: NULL (nil) means every subscriber of the stream; otherwise
// only connections whose token's sub or one of whose streamer.audience
// values is in it.
//
// Several events with one statement, which fires the NOTIFY trigger once
// (arrays of equal length, NULL types allowed; ids come back in array
// order):
//
//	WITH ins AS (
//	    INSERT INTO streamer.events (stream, event, data)
//	    SELECT s, e, d
//	    FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(s, e, d, n)
//	    ORDER BY n
//	    RETURNING id
//	)
//	SELECT array_agg(id ORDER BY id) FROM ins;
//
// The NOTIFY trigger fires once per INSERT statement and PostgreSQL folds
// identical notifications within a transaction, so a transaction costs one
// NOTIFY however many rows it inserts; but each committing transaction that
// issued NOTIFY holds a global lock through its commit. Batch when publishing
// more than a few hundred events per second: put many rows in one statement,
// in one transaction. Single-row transactions are fine below that.
package publisher
