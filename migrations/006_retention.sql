-- Retention (issue #12): prune events by commit time, in small exact steps.
--
-- Storage: unchanged. Pruning deletes the oldest commits and their events in
-- batches of at most a few thousand commits per transaction, found through
-- the indexes the read path already has (commits_pkey, events_txid_id_idx),
-- so a step costs the same on a table of a thousand or a billion rows and
-- publishers pay nothing new. Range partitioning was not chosen: an event
-- gets its commit's seq only at COMMIT, so no partition key known at INSERT
-- (id, created_at) follows commit order, and dropping a partition would
-- still need the exact boundary DELETE it was meant to avoid; converting the
-- existing table into a partitioned one would also copy every row. See
-- docs/operations-retention.md for the measurements.
--
-- Upgrading is catalogue work only (a one-row table, three functions): no
-- lock on streamer.events at all.
--
-- Why pruning cannot make a subscriber skip or repeat a retained event:
--   * a step removes a prefix of the delivery order: the oldest commits by
--     seq whose committed_at is older than the cutoff, every event of each
--     (looked up by txid), and records the newest removed position in
--     streamer.pruned, all in one transaction: every snapshot sees either
--     all of a step or none of it. committed_at is taken under the
--     commit-order lock, so it does not decrease along seq (given a clock
--     that does not step backwards; if it does, a prune stops early, at the
--     first commit that looks new, and never removes one committed within
--     older_than);
--   * only commits visible to the step's snapshot are removed; by the
--     ordering argument every lower seq is then visible or rolled back, so
--     no transaction can later commit at or below the horizon;
--   * retained events keep their positions, so a reader moving its cursor by
--     the rules of internal/dispatch/doc.go visits each retained event once;
--     a prune between two of its reads removes positions it has passed, or,
--     for a reader behind the horizon, positions it has not read yet, which
--     the horizon reports as a gap; it never reorders or adds any;
--   * the commits row with the highest seq is never deleted (its events
--     are), so max(seq), which streamer.head() and the dispatcher's head
--     read, never decreases.

-- The pruned horizon: every position at or before (seq, id) has been
-- pruned; (0, 0) before the first prune. One row, updated in the same
-- transaction as the DELETEs it describes, so that a reader that selects it
-- in the same statement (one snapshot) as its events can tell exactly
-- whether events after its cursor are gone: they are iff
-- (cursor seq, cursor id) < (seq, id).
CREATE TABLE streamer.pruned (
    one          boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq          bigint NOT NULL,
    id           bigint NOT NULL,
    events_total bigint NOT NULL DEFAULT 0,  -- events pruned since this table was created
    pruned_at    timestamptz NULL            -- when the horizon last moved
);
INSERT INTO streamer.pruned (seq, id) VALUES (0, 0);

COMMENT ON TABLE streamer.pruned IS
    'retention horizon: every event at a position <= (seq, id) has been pruned';

-- One step: prunes the events of at most max_commits of the oldest commits,
-- those committed before cutoff (a prefix of seq order: it stops at the first
-- commit that is not older), and those commits rows except the newest one.
-- more is true when the step may have left older commits behind (it reached
-- max_commits and removed something), so a caller repeats steps until more is
-- false. Steps serialise on the transaction-level advisory lock
-- (1400000001, 2): concurrent steps and prunes wait for each other rather
-- than racing for the same rows; publishers and readers never take it.
--
-- Every statement goes through an index: commits_pkey from the horizon (the
-- LIMIT bounds the rows read), events_txid_id_idx for the events of the
-- chosen transactions, one range of commits_pkey for their rows (checked
-- with EXPLAIN in internal/retention's tests). So a step's cost depends on
-- max_commits and on the events of those commits, not on the size of the
-- tables nor on how many rows earlier steps deleted.
CREATE FUNCTION streamer.prune_step(cutoff timestamptz, max_commits integer,
    OUT pruned_events bigint, OUT pruned_commits integer, OUT more boolean)
LANGUAGE plpgsql AS $$
DECLARE
    newest  bigint;
    seqs    bigint[];
    txids   xid8[];
    fromseq bigint;
    hseq    bigint;
    hid     bigint;
BEGIN
    IF max_commits IS NULL OR max_commits < 1 THEN
        RAISE EXCEPTION 'streamer.prune_step: max_commits must be at least 1, not %', max_commits
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cutoff IS NULL THEN
        RAISE EXCEPTION 'streamer.prune_step: cutoff must not be NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(1400000001, 2);

    SELECT max(c.seq) INTO newest FROM streamer.commits c;
    SELECT p.seq INTO fromseq FROM streamer.pruned p;
    -- From the horizon, not from the first entry of commits_pkey: the
    -- entries of the commits earlier steps deleted stay in the index until
    -- a vacuum, and an index scan from the start would step over all of
    -- them at every step (millions during a large backlog). No commits row
    -- below the horizon's seq is left: a step deletes a prefix of visible
    -- commits, all lower seqs have ended (the ordering argument), and the
    -- one row it keeps, the newest, is at or above the horizon it sets.
    SELECT array_agg(w.seq ORDER BY w.seq), array_agg(w.txid ORDER BY w.seq)
      INTO seqs, txids
      FROM (SELECT c.seq, c.txid,
                   bool_and(c.committed_at < cutoff) OVER (ORDER BY c.seq) AS old
              FROM (SELECT c.seq, c.txid, c.committed_at FROM streamer.commits c
                     WHERE c.seq >= fromseq
                     ORDER BY c.seq LIMIT max_commits) c) w
     WHERE w.old;
    IF seqs IS NULL THEN
        pruned_events := 0; pruned_commits := 0; more := false;
        RETURN;
    END IF;

    -- The new horizon: the last event of the newest chosen commit that has
    -- events (the first one tried, but for the commits row prune keeps and
    -- commits whose events were deleted by hand). One index probe each.
    FOR i IN REVERSE cardinality(txids)..1 LOOP
        SELECT max(e.id) INTO hid FROM streamer.events e WHERE e.txid = txids[i];
        IF hid IS NOT NULL THEN
            hseq := seqs[i];
            EXIT;
        END IF;
    END LOOP;

    DELETE FROM streamer.events e WHERE e.txid = ANY(txids);
    GET DIAGNOSTICS pruned_events = ROW_COUNT;

    IF pruned_events > 0 THEN
        UPDATE streamer.pruned p
           SET seq = hseq, id = hid,
               events_total = p.events_total + pruned_events,
               pruned_at = clock_timestamp()
         WHERE (hseq, hid) > (p.seq, p.id);
    END IF;

    -- The chosen commits are every commits row from the first to the last
    -- chosen seq (a prefix of what is visible, and nothing lower can still
    -- commit), so one range scan of commits_pkey finds them, not one descent
    -- per seq.
    DELETE FROM streamer.commits c
     WHERE c.seq BETWEEN seqs[1] AND seqs[cardinality(seqs)] AND c.seq < newest;
    GET DIAGNOSTICS pruned_commits = ROW_COUNT;
    more := cardinality(seqs) = max_commits AND (pruned_events > 0 OR pruned_commits > 0);
END $$;

-- Prunes, now and in one transaction, every event committed more than
-- older_than ago (before now() - older_than: the start of the calling
-- transaction), and returns how many it removed. Exact: it runs steps with
-- one cutoff until none is left. Safe at any time, concurrently with
-- publishers, readers, the background retention and other prunes (see
-- prune_step). For a large backlog prefer the background retention or a
-- loop of prune_step calls in separate transactions: this holds its row
-- locks and the prune lock until its transaction ends.
CREATE FUNCTION streamer.prune(older_than interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := now() - older_than;
    total  bigint := 0;
    step   record;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'streamer.prune: older_than must be a non-negative interval, not %', older_than
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        step := streamer.prune_step(cutoff, 10000);
        total := total + step.pruned_events;
        EXIT WHEN NOT step.more;
    END LOOP;
    RETURN total;
END $$;

-- The retention horizon and the oldest retained event, for gap detection:
-- (pruned_seq, pruned_id) is the newest position pruned ((0, 0): none), and
-- (oldest_seq, oldest_id) the position of the oldest event still stored
-- (NULLs when there is none). Cheap: one row, and the first entries of
-- commits_pkey from the horizon (only the commits row prune keeps, and
-- commits whose events were deleted by hand, have no events). Call it in the same statement as the
-- read it guards, or select from streamer.pruned there, so that both come
-- from one snapshot.
CREATE FUNCTION streamer.retention_state(
    OUT pruned_seq bigint, OUT pruned_id bigint, OUT oldest_seq bigint, OUT oldest_id bigint)
LANGUAGE sql STABLE AS $$
    SELECT p.seq, p.id, o.seq, o.id
    FROM streamer.pruned p
    LEFT JOIN LATERAL (
        SELECT c.seq, e.id
        FROM streamer.commits c
        CROSS JOIN LATERAL (
            SELECT e.id FROM streamer.events e WHERE e.txid = c.txid ORDER BY e.id LIMIT 1
        ) e
        WHERE c.seq >= p.seq  -- nothing is left below; skips deleted entries
        ORDER BY c.seq
        LIMIT 1
    ) o ON true
$$;
