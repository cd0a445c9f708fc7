// Package retention prunes events committed longer ago than the retention,
// in the background, in small steps, one server at a time.
//
// # Overview
//
// The pruning itself is SQL (migrations/006_retention.sql):
// streamer.prune_step(cutoff, max_commits) removes, in one transaction, the
// oldest commits (by seq) committed before cutoff, at most max_commits of
// them, with all their events, and moves the pruned horizon in
// streamer.pruned; streamer.prune(older_than) runs such steps until nothing
// older is left, for operators and cron. Both are exact: "committed" means
// the commits row's committed_at, which is taken under the commit-order lock
// (trigger mode) or is the time of the serialised tick that numbered the
// transaction (ticks mode: after its COMMIT, by at most a tick interval), and
// so grows with seq; an event whose transaction inserted it before the
// cutoff but committed after is kept, and an event not yet numbered by a
// tick is never pruned.
//
// A [Service] runs a pass at Start and then every Interval (at most
// min(Retention/2, 1m)). A pass takes a session-level advisory lock
// ([LockClassID], [LockObjID]) with pg_try_advisory_lock: when another server
// holds it, the pass is skipped. Holding it, the pass bounds its session
// (package silence: PostgreSQL ends it after Config.SilenceTimeout, 10s,
// without a statement, so a server that froze or was cut off mid-pass
// does not keep the lock from every other server), and waits for no
// answer longer than a step's statement_timeout plus that; the pass
// unbounds the pooled connection again when it gives the lock back.
// Then it runs steps, each its
// own transaction, until a step reports nothing more is left. The step size
// adapts so that a step takes about StepBudget; the server cancels a step
// after 4×StepBudget (statement_timeout), and it is retried smaller. The pass
// pauses after each step for Rest times the step's duration (default 3:
// pruning a backlog takes at most a quarter of one connection's time, in
// bursts of about StepBudget, default 50 ms, leaving the CPU to publishers
// and the live path). Each pass that removed something logs one line; every removed
// event is counted ([Service.PrunedEvents], Config.OnPruned) for
// streamer_pruned_events_total, except those of a step whose COMMIT was
// interrupted by Stop after the server had committed it (the outcome is
// unknown to the service; streamer.pruned.events_total has the exact
// count across servers).
//
// # Gap detection
//
// streamer.pruned holds one row (seq, id): the newest position pruned,
// (0, 0) before any prune. Every step moves it in the same transaction as
// its DELETEs, and removes a prefix of the delivery order, so in any
// snapshot: every event at a position <= (seq, id) is gone, and every
// event after it that ever committed is still there unless a later step
// removed it together with a later horizon. A reader that selects
// [HorizonSQL] in the same statement as the events after its cursor c
// knows exactly whether it missed pruned events: iff c < (seq, id). The
// oldest retained event is read by streamer.retention_state() ([ReadState]).
//
// # Why pruning cannot make a subscriber skip or repeat a retained event
//
// The ordering argument of internal/dispatch/doc.go holds with pruning:
// a step deletes only commits visible to its snapshot, so every lower seq
// has ended (committed and visible, or rolled back) and none can commit at
// or below the horizon later; it deletes a whole prefix at once; retained
// events keep their positions. A reader that moves its cursor by the rules
// of that argument therefore sees each retained event once, whether a prune
// ran between its reads or not. The commits row with the highest seq is
// never deleted (only its events), so max(seq), which streamer.head() and
// the dispatcher's head read, never decreases.
//
// # Costs
//
// Every statement of a step goes through an index (TestPruneStepPlan): a
// step costs in proportion to its commits and their events, whatever the
// size of the tables and however many rows earlier steps deleted (it reads
// commits_pkey from the horizon, not over the entries those steps left for
// vacuum, and deletes the chosen commits rows as one range). Publishers take no new lock and pay nothing new;
// readers are never blocked (DELETE takes row locks only on rows nobody
// else writes). Figures: docs/retention.md.
//
// # Invariants
//
//   - At most one pass runs per database at a time, across servers: a pass
//     prunes only while holding the service lock, and releases it (or closes
//     its connection) before it reports.
//   - Steps serialise on the transaction-level lock (1400000001, 2), so a
//     manual streamer.prune and a pass never remove the same rows.
//   - The horizon in streamer.pruned only moves forward, in the transaction
//     that removed the events it covers.
//   - PrunedEvents is written only by the service's goroutine (atomically).
//   - With Retention 0, Start starts nothing.
package retention
