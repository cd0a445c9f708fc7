-- Ordering modes (issue #14): publishers at the cost of a plain INSERT.
--
-- Two ways of numbering publishing transactions into streamer.commits, the
-- table the read path, streamer.head() and retention already use, so that
-- positions "<seq>.<id>" mean the same in both and tokens stay valid when a
-- database changes mode:
--
--   trigger  (001-003) each publishing transaction numbers itself at COMMIT
--            under a global advisory lock and NOTIFYs; it pays two global
--            locks through its COMMIT.
--   ticks    publishers insert and commit, nothing else: no lock, no NOTIFY,
--            no commits row. One server at a time (internal/sequencer) calls
--            streamer.tick() every few milliseconds; a tick numbers every
--            publishing transaction visible in its snapshot and not in the
--            previous tick's (PgQ's rule), in one transaction, and NOTIFYs
--            once.
--
-- The argument (why nothing is skipped or repeated, what a long-open
-- transaction costs, what happens when a sequencer dies mid-tick) is in
-- internal/dispatch/doc.go, "Ticks". This migration installs the functions
-- and leaves the database in trigger mode; `streamer migrate` then applies
-- STREAMER_ORDERING (default ticks) with streamer.set_ordering.

-- One row. tick_snapshot: in ticks mode, every publishing transaction
-- visible in it has its commits row (visible to any snapshot that sees this
-- row's version), and no other has. Updated only by streamer.tick() and
-- streamer.set_ordering(), both under this row's lock (FOR UPDATE), which
-- is what serialises ticks.
CREATE TABLE streamer.ordering (
    one           boolean PRIMARY KEY DEFAULT true CHECK (one),
    mode          text NOT NULL CHECK (mode IN ('trigger', 'ticks')),
    tick_snapshot pg_snapshot NULL,
    ticks         bigint NOT NULL DEFAULT 0,    -- ticks recorded since created
    ticked_at     timestamptz NULL,             -- when the last tick was recorded
    changed_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT ticks_need_snapshot CHECK (mode <> 'ticks' OR tick_snapshot IS NOT NULL)
);
INSERT INTO streamer.ordering (mode) VALUES ('trigger');

COMMENT ON TABLE streamer.ordering IS
    'ordering mode (trigger or ticks) and, in ticks mode, the snapshot of the last tick';

-- The calling statement's snapshot with the caller's own transaction, if it
-- has an xid, marked as running. pg_current_snapshot() lists neither the own
-- xid in xip nor puts xmax at or below it, so pg_visible_in_snapshot() says
-- the own, uncommitted transaction is visible; a tick taken inside a
-- publishing transaction (streamer.head() does that) must not number it
-- before it commits, nor count it as done for the next tick.
CREATE FUNCTION streamer.tick_snapshot_now() RETURNS pg_snapshot
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s  pg_snapshot := pg_current_snapshot();
    me xid8 := pg_current_xact_id_if_assigned();
BEGIN
    IF me IS NULL OR NOT pg_visible_in_snapshot(me, s) THEN
        RETURN s;
    END IF;
    RETURN (least(pg_snapshot_xmin(s), me)::text || ':' || pg_snapshot_xmax(s)::text || ':' ||
            (SELECT string_agg(x::text, ',' ORDER BY x)
               FROM (SELECT pg_snapshot_xip(s) AS x UNION SELECT me) u))::pg_snapshot;
END $$;

-- The transactions a tick from prev to cur numbers: those with events that
-- are visible in cur and not in prev, in xid order. Candidates come from
-- the two snapshots, never from a scan of every event: prev's running
-- transactions (xip) and the xids assigned between the two (prev's xmax up
-- to cur's), each one probe of events_txid_id_idx, minus those not visible
-- in cur. So a tick costs one probe per transaction of the whole database
-- since the last recorded tick plus one per transaction that was running
-- then, whatever the rows of a long-open transaction. Up to 100 xids
-- since prev (what a tick every few milliseconds meets) they are probed
-- one by one in a loop, which costs a fifth of planning and running one
-- set-based statement; up to 10,000 by that statement; when more were
-- assigned (a sequencer was down for a while), the range is walked as a
-- loose index scan instead, one probe per distinct txid with events in it.
-- The caller's own transaction is never a candidate (see
-- streamer.tick_snapshot_now).
CREATE FUNCTION streamer.tick_txids(prev pg_snapshot, cur pg_snapshot) RETURNS xid8[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    lo   xid8 := pg_snapshot_xmax(prev);
    hi   xid8 := pg_snapshot_xmax(cur);
    me   xid8 := pg_current_xact_id_if_assigned();
    span bigint := hi::text::bigint - lo::text::bigint;
    new  xid8[];
    cand xid8;
BEGIN
    -- A few candidates (prev's running transactions, then the xids
    -- assigned since): a loop of probes, each a cached plan, in xid order.
    -- ORDER BY ... LIMIT 1 keeps each an index probe (see below); not in an
    -- EXISTS, which drops both and lets a generic plan scan the table.
    IF span <= 100 THEN
        new := '{}';
        FOREACH cand IN ARRAY ARRAY(
            SELECT c.x FROM (SELECT pg_snapshot_xip(prev)
                             UNION ALL
                             SELECT g::text::xid8 FROM generate_series(lo::text::bigint, hi::text::bigint - 1) AS g) c(x)
            ORDER BY c.x) LOOP
            IF pg_visible_in_snapshot(cand, cur) AND cand IS DISTINCT FROM me
               AND (SELECT e.id FROM streamer.events e WHERE e.txid = cand ORDER BY e.txid, e.id LIMIT 1) IS NOT NULL THEN
                new := new || cand;
            END IF;
        END LOOP;
        RETURN new;
    END IF;
    -- Candidates from the snapshots: each one index probe of
    -- events_txid_id_idx. LATERAL ... LIMIT 1 keeps it a probe per
    -- candidate: as a semi join the planner may hash every txid of events
    -- (one bulk insert makes few distinct txids look cheap). TestTickPlan
    -- checks that no tick scans the table.
    IF span <= 10000 THEN
        SELECT coalesce(array_agg(c.x ORDER BY c.x), '{}') INTO new
        FROM (SELECT x FROM pg_snapshot_xip(prev) AS x
              UNION
              SELECT g::text::xid8 FROM generate_series(lo::text::bigint, hi::text::bigint - 1) AS g) c
        CROSS JOIN LATERAL (SELECT 1 FROM streamer.events e WHERE e.txid = c.x ORDER BY e.txid, e.id LIMIT 1) hit
        WHERE pg_visible_in_snapshot(c.x, cur)
          AND NOT pg_visible_in_snapshot(c.x, prev)
          AND c.x IS DISTINCT FROM me;
        RETURN new;
    END IF;
    -- A long gap: a loose index scan of [lo, hi), one probe per distinct
    -- txid with events there, plus prev's running transactions.
    WITH RECURSIVE walk(t) AS (
        SELECT (SELECT e.txid FROM streamer.events e
                 WHERE e.txid >= lo AND e.txid < hi ORDER BY e.txid LIMIT 1)
        UNION ALL
        SELECT (SELECT e.txid FROM streamer.events e
                 WHERE e.txid > w.t AND e.txid < hi ORDER BY e.txid LIMIT 1)
        FROM walk w WHERE w.t IS NOT NULL
    )
    SELECT coalesce(array_agg(c.x ORDER BY c.x), '{}') INTO new
    FROM (SELECT x FROM pg_snapshot_xip(prev) AS x
          UNION
          SELECT w.t FROM walk w WHERE w.t IS NOT NULL) c
    CROSS JOIN LATERAL (SELECT 1 FROM streamer.events e WHERE e.txid = c.x ORDER BY e.txid, e.id LIMIT 1) hit
    WHERE pg_visible_in_snapshot(c.x, cur)
      AND NOT pg_visible_in_snapshot(c.x, prev)
      AND c.x IS DISTINCT FROM me;
    RETURN new;
END $$;

-- How many xids a tick may have to probe before it records a tick even
-- though it found no events (see streamer.tick).
CREATE FUNCTION streamer.tick_span(prev pg_snapshot, cur pg_snapshot) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_snapshot_xmax(cur)::text::bigint - pg_snapshot_xmax(prev)::text::bigint
         + (SELECT count(*) FROM pg_snapshot_xip(prev))
$$;

-- Records one tick: numbers, in one transaction, every publishing
-- transaction that committed since the last tick (visible in this tick's
-- snapshot, not in the last one's), in xid order, with seqs from
-- streamer.commit_seq and the tick's time as committed_at, and NOTIFYs
-- "streamer" when it numbered any. Returns how many it numbered; NULL in
-- trigger mode (nothing to do). A tick that finds nothing writes nothing
-- and takes no lock (so no xid either: it is read-only), unless the xids it
-- had to consider grew past 1000 (then it records its snapshot so that the
-- next tick's candidates stay few).
--
-- It looks first without a lock: the ordering row as this statement's
-- snapshot sees it (the last tick's snapshot P), then a snapshot S taken by
-- a later statement (so it sees that tick), and the transactions visible in
-- S and not in P. None: nothing has committed since, and it returns 0.
-- Otherwise it locks the ordering row (FOR UPDATE), which serialises
-- ticks. When the row still holds P, no tick committed since it read P (a
-- recorded tick always stores a newer snapshot), so S is still a snapshot
-- that sees the last tick, and what it found stands; otherwise it starts
-- again from the row's snapshot with a new S, taken after the lock. In READ
-- COMMITTED that S sees the previous tick; in REPEATABLE READ or
-- SERIALIZABLE FOR UPDATE fails when a tick committed after the
-- transaction's snapshot, so a stale snapshot never ticks.
CREATE FUNCTION streamer.tick() RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    st    streamer.ordering;
    seen  text;
    cur   pg_snapshot;
    txids xid8[];
    at    timestamptz;
    one   xid8;
BEGIN
    SELECT * INTO st FROM streamer.ordering;
    IF st.mode <> 'ticks' THEN
        RETURN NULL;
    END IF;
    seen := st.tick_snapshot::text;
    cur := streamer.tick_snapshot_now();
    txids := streamer.tick_txids(st.tick_snapshot, cur);
    IF cardinality(txids) = 0 AND streamer.tick_span(st.tick_snapshot, cur) <= 1000 THEN
        RETURN 0;
    END IF;
    SELECT * INTO st FROM streamer.ordering FOR UPDATE;
    IF st.mode <> 'ticks' THEN
        RETURN NULL;
    END IF;
    IF st.tick_snapshot::text IS DISTINCT FROM seen THEN
        cur := streamer.tick_snapshot_now();
        txids := streamer.tick_txids(st.tick_snapshot, cur);
    END IF;
    IF cardinality(txids) = 0 THEN
        IF streamer.tick_span(st.tick_snapshot, cur) > 1000 THEN
            UPDATE streamer.ordering SET tick_snapshot = cur;
        END IF;
        RETURN 0;
    END IF;
    -- An upper bound of every numbered transaction's commit time: each was
    -- visible in cur, taken before this.
    at := clock_timestamp();
    -- One nextval after another: seqs rise with the xids (txids is in xid
    -- order). A cached INSERT per transaction costs less than one
    -- statement that pairs them, for the few a tick numbers.
    FOREACH one IN ARRAY txids LOOP
        INSERT INTO streamer.commits (seq, txid, committed_at)
        VALUES (nextval('streamer.commit_seq'), one, at);
    END LOOP;
    UPDATE streamer.ordering
       SET tick_snapshot = cur, ticks = ticks + 1, ticked_at = at;
    PERFORM pg_notify('streamer', '');
    RETURN cardinality(txids);
END $$;

-- Switches the ordering mode; returns the mode now in force. Waits for every
-- transaction that is inserting into streamer.events (SHARE ROW EXCLUSIVE
-- conflicts with their ROW EXCLUSIVE) and for a running tick (the ordering
-- row's lock), so that no transaction is numbered by both modes or by none:
--   trigger -> ticks: every transaction that inserted under the triggers has
--     ended (and numbered itself); the first tick's previous snapshot is
--     taken now, so all of them are visible in it and none is numbered
--     again, while every later publisher is not visible in it.
--   ticks -> trigger: a last tick numbers every committed publishing
--     transaction; later publishers number themselves at COMMIT, after this
--     commits, so with higher seqs.
-- Tokens stay valid either way: positions are (seq, id) in both modes.
CREATE FUNCTION streamer.set_ordering(new_mode text) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    old text;
BEGIN
    IF new_mode IS NULL OR new_mode NOT IN ('trigger', 'ticks') THEN
        RAISE EXCEPTION 'streamer.set_ordering: mode must be trigger or ticks, not %', new_mode
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'streamer.set_ordering needs READ COMMITTED, not %', current_setting('transaction_isolation')
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    -- A transaction that has written already may have inserted events
    -- under one mode that the other would number again.
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'streamer.set_ordering must run in a transaction that has written nothing'
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    LOCK TABLE streamer.events IN SHARE ROW EXCLUSIVE MODE;
    SELECT mode INTO old FROM streamer.ordering FOR UPDATE;
    IF old = new_mode THEN
        RETURN old;
    END IF;
    IF new_mode = 'ticks' THEN
        ALTER TABLE streamer.events DISABLE TRIGGER events_notify;
        UPDATE streamer.ordering
           SET mode = 'ticks', tick_snapshot = streamer.tick_snapshot_now(), changed_at = clock_timestamp();
    ELSE
        PERFORM streamer.tick();
        ALTER TABLE streamer.events ENABLE TRIGGER events_notify;
        UPDATE streamer.ordering
           SET mode = 'trigger', tick_snapshot = NULL, changed_at = clock_timestamp();
    END IF;
    RETURN new_mode;
END $$;

-- head() in ticks mode must also be exact: "<seq>" means every transaction
-- visible in one snapshot S and no other, so every transaction visible in S
-- must be numbered at or below it and every other above. In one statement
-- (one snapshot S): when no transaction with events is visible in S but not
-- in the last tick's snapshot as S sees it, the ticks visible in S are a
-- prefix of all ticks and hold exactly what S sees, so max(seq) is exact.
-- Otherwise head() records a tick itself, at a snapshot it then answers
-- for, and returns the head after it; that tick commits with the caller's
-- transaction and holds the ordering row (every other tick) until then:
-- call head() in a short transaction of its own. It needs READ COMMITTED
-- then (an older transaction snapshot cannot be made a tick boundary).
CREATE OR REPLACE FUNCTION streamer.head() RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    h bigint;
BEGIN
    SELECT CASE
             WHEN o.mode = 'ticks'
              AND cardinality(streamer.tick_txids(o.tick_snapshot, pg_current_snapshot())) > 0
             THEN NULL
             ELSE (SELECT coalesce(max(seq), 0) FROM streamer.commits)
           END
      INTO h
      FROM streamer.ordering o;
    IF h IS NOT NULL THEN
        RETURN h::text;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'streamer.head() in ticks mode needs READ COMMITTED while events wait for a tick, not %',
            current_setting('transaction_isolation')
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    PERFORM streamer.tick();
    -- The ordering row is ours until the transaction ends: no later tick
    -- is visible to this statement, only ours.
    RETURN (SELECT coalesce(max(seq), 0) FROM streamer.commits)::text;
END $$;
