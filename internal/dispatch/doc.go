// Package dispatch reads committed events from PostgreSQL and fans them out
// to subscribers, exactly once and in one order.
//
// # Overview
//
// One goroutine, the dispatcher, owns all dispatch state: the live read
// position, every subscriber's scan cursor, and the replay buffers of the
// subscribers that are still replaying. It is the only writer of the
// registry (package registry), the one index of live subscribers by stream,
// which metrics and anything else that needs every connection read
// concurrently. It takes Wake (from the listener, coalesced: any number of
// wakes while one is pending is one read), Notified (from the listener: a
// tick's notification, which carries the tick's events; see "Ticks"),
// Subscribe (from HTTP handlers),
// Unsubscribe (from whoever ends a connection: a hub worker running the
// connection's close callback, or a handler), plus replay results from a
// small pool of replay workers. Subscribe and Unsubscribe hand their request
// over through a mutex-guarded list and a one-slot notification, so neither
// waits for the dispatcher goroutine, which may be in a database read;
// Subscribe then waits for its reply, Unsubscribe returns at once. Database
// reads for live delivery run on the dispatcher goroutine; socket writes
// do not (each connection is written by its own writer, fed through a
// bounded, non-blocking queue), except that a release of at most 32
// connections (inlineRelease) lets each write its frames with one
// non-blocking write(2) on the dispatcher goroutine and leave the rest to
// its writer (sse.Conn.ReleaseWrite: handing a connection over costs
// about as much as that write). So a slow client cannot stall the
// dispatcher and the dispatcher never waits on a socket. Live frames are queued held
// (Subscriber.EnqueueHeld) and released once per subscriber at the end of
// the loop turn that queued them (one turn: one page of a live read, a
// replay joining, ...), so that each connection writes a turn's frames in
// one write instead of waking at the turn's first frame and writing the
// rest in pieces while the fan-out goes on. A turn that has held frames
// for 2 ms releases what it queued so far without waiting for its end, so
// a page fanned out to very many connections does not hold the first of
// them back for the whole page.
//
// A wake costs one read (none for a tick's notification that carried its
// events, below), whatever the number of streams or subscribers:
// positions are global, so the dispatcher keeps a single live read position
// (rather than one per stream) and reads every commit after it, restricted to
// the streams somebody is subscribed to when there are at most 1,000 of them,
// paging until caught up. Each event's frame is encoded once and the same
// bytes are queued on every subscriber behind it. Subscribers that are
// behind the live position (a resume, a reconnect) are served by replay
// workers that read with their own cursors, so a far-behind subscriber never
// holds back live delivery; at most ReplayWorkers replays hold a database
// connection at once, and together they hand at most ReplayRate events per
// second to their connections (a token bucket taken a page at a time), so
// that a reconnect storm cannot take the CPU that live delivery needs.
//
// # Delivery order
//
// Each publishing transaction is numbered when it commits: a deferred
// constraint trigger on streamer.events runs at COMMIT, and its first firing
// in a transaction takes a transaction-level advisory lock and inserts one row
// (seq, txid) into streamer.commits, seq from a sequence. The lock is held
// until the transaction has ended, so
//
//  1. seq order is commit order: a transaction takes its seq only after every
//     transaction with a lower seq has ended; and
//  2. when a reader's snapshot sees seq n, every seq below n is visible to it
//     too, or belonged to a transaction that rolled back and will never
//     appear. (PostgreSQL makes a transaction visible before it releases its
//     locks.)
//
// An event's position is (seq of its transaction, its id). Positions order
// events totally: by commit, then by insertion within the transaction. That
// is the order every subscriber and every replay receives, on every server
// process, since it is a function of the database alone. It satisfies the
// contract's rule (a transaction that committed before another began comes
// first) and is the best order the contract names: commit order, so the last
// event a subscriber sees matches the database's final state.
//
// # Ticks
//
// The section above describes the trigger ordering mode. In the ticks mode
// (migrations/007_ticks.sql; streamer migrate puts a new database in it,
// and STREAMER_ORDERING=ticks switches an existing one) publishers only
// insert: no trigger runs at COMMIT, no lock is taken, nothing is
// NOTIFYed. The streamer.commits rows
// are written afterwards, by ticks, and everything in this package (the
// read, head, replay, gaps, tokens) reads them exactly as before.
//
// A tick is one transaction, streamer.tick(), run every few milliseconds
// by the one server that holds the sequencer lock (internal/sequencer),
// and also by streamer.head() and streamer.set_ordering() when they need
// one. It reads the last tick's snapshot P from the streamer.ordering row,
// takes a snapshot S (a later statement, so in READ COMMITTED it sees that
// tick) and finds the transactions with events visible in S and not in P;
// when there are none it returns, having taken no lock and written
// nothing. Otherwise it locks the ordering row (FOR UPDATE: ticks are
// serialised); if the row no longer holds P (another tick committed
// meanwhile: every recorded tick stores a newer snapshot) it starts again
// from the row's P with a new S, taken after the lock. It inserts one
// commits row per transaction with events that is visible in S and not in
// P, in xid order, with seqs from streamer.commit_seq and the tick's time
// as committed_at, stores S as the new P and NOTIFYs once. The caller's own
// transaction is counted as running in S (pg_current_snapshot() would call
// it visible), so a tick taken inside a publishing transaction numbers it
// only after it commits.
//
// Why nothing is skipped or repeated. Snapshots taken one after the other
// see more and more: a transaction visible in P is visible in any later S.
// Each transaction with events is numbered by the first tick whose snapshot
// sees it, and by no other: not earlier (it is not visible in that tick's
// S), not later (it is visible in every later P). It is numbered at all
// once it has committed: the next tick's snapshot sees it. A rolled-back
// transaction has no visible events and is never numbered. Two ticks never
// work from the same P: the row lock makes the second wait for the first,
// see that the row no longer holds the P it read before the lock, and
// start again from the first's; a tick in REPEATABLE READ whose snapshot
// is older than the last tick fails at FOR UPDATE instead of working from
// an old P. (A tick that found nothing returns without the lock: it has
// recorded nothing, so it cannot skip or repeat anything.)
// The ordering argument above then holds unchanged: ticks commit in seq
// order (each takes its seqs after the previous one committed), so
// (1) and (2) hold for the commits rows they write, and so does every
// conclusion drawn from them (the reader's cursor rules, the connect
// sequence, retention's prefix, head()).
//
// The order: by tick, then by xid within a tick. A transaction that
// committed before another began has the lower xid (xids are assigned
// while a transaction runs) and is visible in every snapshot that sees the
// other: it is numbered in the same tick or an earlier one, and first
// within a tick. So the contract's rule holds. It is commit order only to
// the tick: transactions that committed within one tick interval of each
// other may be delivered in xid order instead (PostgreSQL does not record
// commit order without track_commit_timestamp).
//
// What dies between reading and recording: a tick is one transaction, so
// a sequencer that dies (or whose connection is cut) before COMMIT has
// recorded nothing; P is still the previous tick's and the next tick, by
// whichever server, numbers the same transactions. One that dies after
// COMMIT has recorded the whole tick. There is nothing in between. While
// no server sequences (the lock's holder died and no other exists yet),
// events wait; they are not lost. Another server's sequencer waits in
// pg_advisory_lock, which it gets as soon as the dead session ends: at
// once when the connection closes, and within the sequencer's
// SilenceTimeout (10s) when its server froze or was cut off without
// PostgreSQL noticing (internal/sequencer).
//
// What a long-open transaction costs: nothing to anyone's delivery. While
// it runs it is in every tick's xip; others that commit meanwhile are
// numbered and delivered as usual; it is numbered by the first tick after
// its COMMIT. Each tick probes events_txid_id_idx once per transaction
// that was running at the previous tick and once per xid assigned since
// (one statement over the snapshots' xids, or a loose index scan when more
// than 10,000 were assigned; never a scan of rows), so its cost does not
// depend on how many rows a long transaction inserted. An idle tick writes
// nothing and takes no lock or xid; it records its snapshot anyway when
// more than 1,000 xids would otherwise be probed again. A head() that must
// tick holds the ordering row until its caller's transaction ends,
// delaying every other tick meanwhile: call it in a short transaction of
// its own.
//
// head() in ticks mode stays exact. In one statement (one snapshot H):
// when every transaction with events that H sees is visible in the last
// tick's snapshot (as H sees the ordering row), the ticks H sees are a
// prefix of all ticks and number exactly what H sees, so max(seq) splits
// "committed before" from "after". Otherwise head() records a tick itself
// and answers for that tick's snapshot. It needs READ COMMITTED then.
//
// Retention stays exact by commit time, to the tick: committed_at is the
// time of the tick that numbered the transaction, after its COMMIT and
// at most a tick interval (plus sequencer lag) later; it grows with seq
// because ticks are serialised. Pruning therefore never removes an event
// committed less than older_than ago, and removes each one at most that
// interval late. Events not yet numbered are never pruned. The delivery
// lag metric is measured from the same time.
//
// Switching modes (streamer.set_ordering, run by streamer migrate) locks
// streamer.events against inserts (SHARE ROW EXCLUSIVE waits for every
// publishing transaction in flight) and the ordering row: to ticks, P is
// taken after every trigger-mode publisher ended, so each of them is
// visible in P and never numbered again, and every later one is not; to
// trigger, a last tick numbers everything committed, and later publishers
// number themselves at COMMIT with higher seqs. Positions are (seq, id) in
// both modes, so tokens of either stay valid.
//
// A tick's notifications carry what it numbered
// (migrations/010_tick_parts.sql, after 008_tick_payload.sql). The tick
// knows prev, the head before it (max(seq) read while holding the
// ordering row, so after every earlier tick), and its last seq; in the
// ticks mode only ticks take seqs, so the commits with seq in that range
// are exactly the tick's, and their events, in delivery order, are what a
// read from "after every event of prev" returns up to the last seq. The
// tick splits that run of events into up to sixteen notifications of under
// 8,000 bytes, anywhere, within a commit too; each says where it starts
// and ends (from, to: positions in the delivery order) and carries the
// events between, or, for what they cannot carry (an event over 7,849
// bytes, events past the 2,000th or the sixteenth notification), a last
// notification says only where it starts and ends. They are contiguous:
// the first starts after prev, each next one where the one before ended,
// the last ends after the last seq. Notified parses each payload on the
// listener's goroutine and queues the note (at most 128: past that they
// are dropped and one read is asked for instead); the dispatcher takes
// them in the order they were committed (ticks are serialised, one
// transaction's notifications arrive together and in order, and NOTIFY
// delivers in commit order) and, for each:
//   - the head is at or past the note's end: the note is served already,
//     whoever sent it (it changes nothing);
//   - sent by any backend but the leading sequencer's: read instead. Any
//     session may NOTIFY on any channel, so a payload proves nothing by
//     itself; only the sender's PID cannot be forged. The leading
//     sequencer records its PID in streamer.ordering.sequencer_pid and
//     announces it (internal/sequencer); the dispatcher looks it up again
//     whenever a note comes from another PID, and after an announcement or
//     any Wake (the listener wakes after every reconnect, when it may have
//     missed one), because once the backend that had a PID is gone, any
//     session may get that PID. Until the announcement arrives (the time a
//     new sequencer takes to get the lock and tick) the old PID is still
//     trusted. Ticks run by streamer.head() are read too;
//   - nobody subscribed: the live head moves to the note's end, as a head
//     read taken after the tick committed would have moved it at least;
//   - the head is exactly the note's start and the note has its events:
//     they are exactly what a read from the head would return up to the
//     note's end (the run of the tick's events between the two), so they
//     are fanned out as that read's page (to the same subscribers, by the
//     same cursors and audience tests) and the head moves to the end;
//   - otherwise (the dispatcher missed a note, a page was full, the events
//     were left out): one read from the head, whose snapshot is later than
//     every queued note's commit and so covers them all.
//
// The parser refuses a payload whose events do not strictly follow its
// start in order, pass its end, or (when it ends within a commit) stop
// short of it, so a note never moves the head over an event it does not
// carry within a commit; a note's whole commits are the sender's word,
// which is why only the leading sequencer's is taken.
//
// The sender's PID is trusted while it is the one recorded, and a PID is
// given out again once its backend has ended. Between the end of the
// leader's backend and the first note of the next leader (which records
// its own PID after its first tick), a backend that the kernel gave the
// same PID would be trusted. Linux hands PIDs out in turn up to pid_max
// (32,768 on some machines), so that needs them to wrap within the
// window; a role that may end the leader's backend (the same role, or a
// member of pg_signal_backend) can open the window itself. Not closed
// here: docs/operations.md asks for publishers that are neither.
//
// A note is applied only where a read would have returned the same events
// and moved the head to the same place, so everything said below about
// reads holds for it. Gap detection needs no horizon from it: a note
// applied at the head skips nothing, whatever was pruned since. The read
// per tick per server is then gone wherever the tick's events fit in its
// notifications; trigger
// mode's NOTIFYs keep their empty payload and every one is a wake.
//
// # Why nothing is skipped or repeated
//
// A read returns the events at positions after a cursor, in order, together
// with the highest seq its snapshot sees (one statement, one snapshot). If
// the page is full the cursor moves to its last event; otherwise to "after
// every event of that highest seq". By (2), no event can later appear at or
// below the new cursor: a transaction still running when the snapshot was
// taken has no seq yet, or holds the lock and so a seq above the highest
// visible one. Rolled-back transactions insert no commits row and their
// events are never visible. So reading with "position > cursor" and
// advancing as above visits every committed event once.
//
// The connect sequence joins a replay with live delivery without a gap or a
// duplicate. On Subscribe the dispatcher records the subscriber as replaying,
// so that every live read from then on appends the subscriber's events to its
// replay buffer, and queues a replay job from the resume position. (A
// subscriber without a resume position starts at the dispatcher's live head
// and goes live at once: every later live read starts at or before that
// head, so events committed after the connection was accepted are never
// missed, and a few committed just before it may be delivered.) A worker
// reads every page after the resume position, enqueueing with backpressure,
// and returns the cursor it reached. That cursor is at or past the live head
// at Subscribe time, because the worker's snapshot is later. The buffer holds every live event after that head, so
// the union covers everything; the dispatcher moves the subscriber into the
// registry and enqueues the buffered events whose position is past the
// subscriber's scan cursor (de-duplication by position). If more than
// MaxBuffered events arrived during the replay, the buffer is dropped and
// another round runs from the cursor; each round's buffer starts at a live
// head no later than the next round's snapshot, so the argument repeats.
//
// A subscriber's scan cursor only moves forward, and an event is enqueued
// only when its position is past the cursor, so no event is enqueued twice.
//
// Retention (streamer.prune_step) deletes, in one transaction, a prefix of the
// delivery order: the oldest commits rows by seq that its snapshot sees,
// stopping at the first one committed too recently, together with every event
// of those transactions, and records the newest deleted position in
// streamer.pruned. Since it only deletes commits its snapshot sees, by (2)
// every lower seq has ended, so no transaction can commit at or below the
// horizon afterwards; retained events keep their positions, and nothing is
// inserted or renumbered. A read therefore sees the same retained events after
// its cursor whether or not a prune ran before it, minus a prefix, and the
// cursor rules above visit each retained event exactly once. The newest
// commits row is never deleted, so the head (max(seq)) never goes back.
//
// # Audience
//
// An event whose audience is not NULL may be seen only by a connection
// whose audience keys (its token's sub and streamer.audience values, given
// to Subscribe) include one of its values; an anonymous connection has no
// keys and sees only events whose audience is NULL.
//
// Live delivery: the one live read per wake selects each event's audience
// and the dispatcher tests it against each subscriber's keys, so a wake
// still costs one read whatever the audiences. The test allocates nothing
// and is mostly one AND: each connection's keys and each event's values
// have a 64-bit mask of one hashed bit per value, computed once (at connect,
// and once per event), and masks without a common bit mean no common value;
// otherwise only the keys whose bit the event has are compared as strings.
// Fan-out walks a stream's subscriber states looked up once per registry
// snapshot, not once per event. A hidden event is treated exactly like a visible
// one except that it is not enqueued: the subscriber's scan cursor moves
// past it all the same. Filtering therefore cannot skip a visible event or
// repeat one: which events a subscriber considers, and in which order, is
// what the argument above proves for every subscriber, and the filter only
// decides, per event and per subscriber, between "enqueue" and "do not";
// it never moves the scan cursor anywhere an unfiltered subscriber's would
// not go.
//
// Replays decide visibility in SQL (a CASE in the select list against the
// connection's keys as a text[] parameter): a hidden row comes back as its
// position only, never its type or data, and pages are cut exactly as for
// every other read (by events and by commits), so the "nothing skipped or
// repeated" argument holds unchanged, and a replay moves past commits whose
// events were all hidden. The predicate is not in WHERE on purpose: the
// plan is the same either way (audience has no index, so the row is read to
// test it either way; EXPLAIN ANALYZE on 1,000,000 rows is recorded in
// docs/benchmarks.md, and TestReadPlan checks the plans), and returning the position is what tells the
// replay where the last hidden event was. The replay page cache is keyed by
// the audience too, so one audience's page is never served to another.
//
// Id-only frames. A connection's Last-Event-ID is the id of the last frame
// it received; after hidden events it would lag behind the scan cursor, and
// a reconnect would read the hidden events again (10,000 of them, twenty
// pages, for nothing). So a live subscriber whose last considered event is
// hidden gets a frame that carries only that event's id, within
// Config.IDFrameDelay (the server passes its heartbeat interval, so an idle
// connection gets it by its next heartbeat). One timer serves every
// connection: the first loop turn that leaves a subscriber behind a hidden
// event starts it, and when it fires every subscriber still behind one gets
// its frame (the bytes shared by those at the same position). Not sending
// it at the end of every loop turn is what keeps hidden events cheap: a
// subscriber that skips hidden events continuously gets at most one frame
// per IDFrameDelay, where one per read would cost nearly a delivery per
// hidden event at low event rates. A subscriber that skipped hidden events
// and then received a visible one needs none, since that event's id is past
// them. The price is that a client that reconnects within IDFrameDelay of
// skipping hidden events reads them again from its last id (and is sent
// none of them). A replay ends a page whose last row was hidden with an
// id-only frame at once. It is safe: an id-only frame dispatches no event
// in EventSource (no data line), and its id is a position the subscriber
// has considered everything up to, so resuming from it replays exactly the
// events after it, as resuming from any event id does. Id-only frames are
// not counted as delivered.
//
// # Gaps
//
// Every read selects the pruned horizon (streamer.pruned) in the same
// statement as its events, so both come from one snapshot: a reader whose
// cursor c is before the horizon h lost events after c, and the page it got
// holds exactly the oldest retained events after c; a reader at or after h
// lost nothing. (Reading h in a separate statement would give false or
// silent gaps when a prune runs between the two.) A replay read from
// c < h queues the gap frame, then its page: "event: streamer.gap" with
// data {"reason":"retention","oldest":"<token of h>"} and no id line, so
// the client's Last-Event-ID neither goes back nor passes unsent events
// (from the token of h nothing is missing). The horizon is global: a
// subscriber of some streams may be told of a gap that only other streams
// had, which the contract allows. A live read whose head is behind h (a
// prune overtook it) queues the gap on every live subscriber whose scan
// cursor is behind h, and remembers h for the subscribers still replaying:
// one whose replay cursor is behind it when it joins gets the gap before
// its buffered events, since the buffer lacks the events the live read
// never saw. A cached replay page is served only if its start is at or
// after the horizon read just before (one single-row read instead of the
// page): then it is exactly what a database read would return. Pages that
// start before a horizon any read has seen are dropped and never cached.
//
// # Tokens
//
// The SSE id of an event is its position, "<seq>.<id>" in decimal (see
// package cursor): at most 39 bytes, whatever the number of streams or
// transactions in flight. One token resumes every stream of a connection,
// since positions are global. streamer.head() returns "<seq>": after every
// commit its snapshot sees, so a page that embeds it receives exactly the
// events committed after head() ran, including those of transactions that
// were open while it ran.
//
// # Costs
//
// In ticks mode publishers pay for an INSERT and nothing else; the server
// pays one tick transaction (a few index probes, one commits row per
// publishing transaction, one WAL flush) per tick while events arrive, and
// one read-only statement per idle tick. A tick's notification carries its
// events when they fit (at most 200 and 7,900 bytes), and then no server
// reads; otherwise one live read per server serves the tick's commits.
// Delivery waits for the next tick (5 ms after a busy one and for
// 100 ms after it, doubling to at most 20 ms after an idle spell) and for
// the tick's transaction: at 1,000 events/s p50 5.4-5.7 ms against 1.4 ms
// in trigger mode on a 2-core machine. Figures in docs/benchmarks.md.
// The rest of this section is the trigger mode.
//
// Publishers pay for the commit order: per transaction, one row in an
// unlogged table, one commits row and one advisory lock held through COMMIT
// (migrations 001 and 002; no per-row function call remains). PostgreSQL 15
// already serialises committing transactions that issued NOTIFY on a global
// lock, so the additional cost is the commits insert inside that serialised
// section. Measured with pgbench on this project's 2-core machine (200-byte
// rows, fsync on, two rounds each): single-row transactions ran at 3,260 /
// 2,480 tx/s with all of streamer's triggers against 3,890 / 3,860 with the
// NOTIFY trigger alone at 8 clients (-16% / -36%; the machine was not
// quiet), 2,390 / 2,100 against 3,060 / 2,610 at 64 clients (-20%); 100-row
// transactions at 8 clients 760 / 770 against 950 / 750 tx/s (76,000 rows/s
// either way, within noise). In the publish benchmark (fsync off) a 100-row
// INSERT into streamer.events reached 93% of the same INSERT into a table
// without triggers.
//
// A long-open publishing transaction costs nothing: it has no seq until it
// commits, and is then delivered in commit order like any other, without
// holding back anyone's delivery while it is open. A long-open transaction
// of any kind costs nothing either. A transaction that makes the
// constraints immediate early (SET CONSTRAINTS ALL IMMEDIATE) takes the lock
// then and holds up every other publisher's COMMIT until it ends.
//
// Readers pay a join from commits to events by txid; a replay scans every
// commit after its resume point, of every stream, in pages of at most
// PageSize commits, which bounds the cost of a far-behind resume by the
// commits since then. Full replay pages are fixed history, so they are kept
// encoded in a byte-bounded cache shared by the replay workers: clients that
// resume from the same place (a reconnect storm) read each page once.
//
// # Metrics
//
// Config.Metrics (see metrics.go) is told what was delivered without a
// lock or an atomic operation per delivery: the dispatcher goroutine counts
// the frames it queues in a plain integer and reports them once per turn
// of its loop, and a replay worker once per page. "Delivered" means queued
// on the connection, not yet written to its socket. The delivery lag is
// not observed here: a live event's frame is queued with the commit time
// the database recorded (streamer.commits.committed_at) through
// Subscriber.EnqueueHeld, and the connection's writer observes the lag once
// the frame is on the socket (package sse). Events buffered while their
// subscriber replayed go the same way (their lag includes the replay);
// replayed events are history and are queued without a commit time.
//
// # Lifecycle
//
// Start reads the head (a bad pool fails Start) and runs the dispatcher
// goroutine and the replay workers (package startstop) until Stop is called
// or Start's context ends. A run that ends closes every subscriber it still
// serves with ErrStopped and removes it from the registry: its owner sees
// the connection end and the client resumes with its Last-Event-ID, here
// after a restart or elsewhere. A stopped dispatcher can be started again;
// while it is not running Subscribe returns ErrStopped at once and
// Unsubscribe does nothing.
//
// # Invariants
//
//   - Only the dispatcher goroutine reads or writes the subscribers' state,
//     the live head and the replay buffers, and only it writes the registry
//     (Start, before the goroutine begins, and the end of a run, after it
//     has returned, touch them too).
//   - Wake, Unsubscribe and Subscribe's hand-over never wait for the
//     dispatcher goroutine; requests are taken in the order they were made.
//   - A subscriber is in the registry only after its replay is done, and
//     then it is no longer in the replaying index: it is never both
//     buffered and delivered live for the same read.
//   - A subscriber's scan cursor never moves backwards, and an event is
//     enqueued for it only when its position is past the cursor and its
//     audience is NULL or holds one of the subscriber's keys; a hidden
//     event moves the cursor without being enqueued.
//   - No hidden event's type or data is enqueued on a connection or, on a
//     replay, even read from the database.
//   - A live subscriber whose last considered event is hidden is sent an
//     id-only frame at that event's position within IDFrameDelay of the end
//     of the loop turn that considered it, unless a visible event reaches
//     it first; it is listed for that frame at most once. A replay page
//     whose last row was hidden ends with one.
//   - A subscriber gets the gap frame before any event after a position it
//     has not scanned and that was pruned: every replay read checks the
//     horizon of its own snapshot, live reads that of theirs, and a cached
//     page is served only from a start at or after a horizon read just
//     before. A subscriber at or after the horizon never gets one.
//   - A live read names the subscribed streams (live and replaying) when
//     there are at most 1,000 of them, else it reads every stream; either
//     way each wake that needs a read costs one read per page (a tick's
//     note applied at the head costs none).
//   - Every statement the dispatcher runs (a live read, a replay page, a
//     look-up) ends within Config.ReadTimeout, so a silent read-pool
//     connection holds the dispatcher goroutine at most that long: a live
//     read cut short is retried after RetryInterval, a replay cut short
//     closes its subscriber, and either closes the pool's connections
//     (pgxpool.Pool.Reset: the others are likely as silent).
//   - After a run ends, no subscriber of that run is in the registry, and
//     each has been closed.
//   - Every frame queued with EnqueueHeld is released (Subscriber.Release,
//     or sse.Conn.ReleaseWrite in a release of at most inlineRelease)
//     by the end of the loop turn that queued it, or earlier once the turn
//     has held frames for 2 ms (maxHold); a subscriber is released once per
//     release, and only when it was given a frame since the last one.
//   - Every event frame queued on a connection (id-only frames are not
//     events) is reported to Config.Metrics as delivered exactly once: by the dispatcher goroutine at the end of the
//     loop turn that queued it, or by the replay worker after its page.
package dispatch
