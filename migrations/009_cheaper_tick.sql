-- A cheaper tick (issue #14): the same numbering in fewer statements.
--
-- What a tick numbers, and why nothing is skipped or repeated, is unchanged
-- (007_ticks.sql; internal/dispatch/doc.go, "Ticks"); so is its payload
-- (008_tick_payload.sql). What changes is how many statements it runs. A
-- tick of a few transactions cost about 0.9 ms of backend CPU, and most of
-- it was not the work but its overhead (pg_stat_statements with
-- track_planning, perf on the backend; docs/benchmarks-log.md, "A cheaper
-- tick"):
--   - every statement of a PL/pgSQL function starts and ends an executor;
--     a tick ran about 17: one probe of events_txid_id_idx per candidate
--     xid, one INSERT into streamer.commits per numbered transaction (each
--     also preparing the table's constraints), and six more;
--   - the statement that listed the candidate xids was planned again at
--     every tick: a plan cache keeps a custom plan while it looks cheaper
--     than the generic one, and with generate_series(lo, hi) the custom plan
--     always does.
-- Now a tick runs six: it reads the ordering row, lists and probes the
-- candidates in one statement, locks the ordering row, numbers and
-- records in one statement, builds the payload and NOTIFYs. Its statements
-- keep generic plans (planned once per session): tick() and head(), the
-- two entry points, run with plan_cache_mode = force_generic_plan, which
-- holds for the functions they call.

-- The transactions a tick from prev to cur numbers; see 007_ticks.sql. Up
-- to 10,000 xids since prev, one statement: the candidates from the two
-- snapshots, each one probe of events_txid_id_idx (LATERAL ... LIMIT 1
-- keeps it a probe, see 007); beyond, the loose index scan of 007. Callers
-- set plan_cache_mode = force_generic_plan (tick() and head() do): planned
-- for its parameters at every call, the statement cost more than it ran.
CREATE OR REPLACE FUNCTION streamer.tick_txids(prev pg_snapshot, cur pg_snapshot) RETURNS xid8[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    lo   xid8 := pg_snapshot_xmax(prev);
    hi   xid8 := pg_snapshot_xmax(cur);
    me   xid8 := pg_current_xact_id_if_assigned();
    new  xid8[];
BEGIN
    IF hi::text::bigint - lo::text::bigint <= 10000 THEN
        -- prev's running transactions are all below lo, the xids assigned
        -- since are from lo up: the two lists are disjoint, and neither is
        -- visible in prev.
        SELECT coalesce(array_agg(c.x ORDER BY c.x), '{}') INTO new
        FROM (SELECT x FROM pg_snapshot_xip(prev) AS x
              UNION ALL
              SELECT g::text::xid8 FROM generate_series(lo::text::bigint, hi::text::bigint - 1) AS g) c
        CROSS JOIN LATERAL (SELECT 1 FROM streamer.events e WHERE e.txid = c.x ORDER BY e.txid, e.id LIMIT 1) hit
        WHERE pg_visible_in_snapshot(c.x, cur)
          AND c.x IS DISTINCT FROM me;
        RETURN new;
    END IF;
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

-- How many xids a tick may have to probe (007_ticks.sql), asked by every
-- tick that finds nothing. As an SQL function called from PL/pgSQL it was
-- planned at every call; in PL/pgSQL its statement keeps its plan.
CREATE OR REPLACE FUNCTION streamer.tick_span(prev pg_snapshot, cur pg_snapshot) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN pg_snapshot_xmax(cur)::text::bigint - pg_snapshot_xmax(prev)::text::bigint
           + (SELECT count(*) FROM pg_snapshot_xip(prev));
END $$;

-- tick() sets plan_cache_mode for it now.
ALTER FUNCTION streamer.tick_payload(bigint, xid8[], bigint[], timestamptz) RESET plan_cache_mode;

-- Records one tick; see 007_ticks.sql for what it numbers and why and
-- 008_tick_payload.sql for what it NOTIFYs. Unchanged but for how.
CREATE OR REPLACE FUNCTION streamer.tick() RETURNS integer
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    st      streamer.ordering;
    seen    text;
    cur     pg_snapshot;
    txids   xid8[];
    seqs    bigint[];
    at      timestamptz;
    prev    bigint;
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
    at := clock_timestamp();
    -- One statement. Its parts share one snapshot, taken after the lock
    -- (READ COMMITTED), which sees every earlier tick and none of its own
    -- rows: max(seq) there is the head before this tick (in the ticks mode
    -- only ticks take seqs, under this row's lock). The seqs are taken in
    -- txids' order (xid order), so sorted they pair with txids.
    WITH before AS (
        SELECT coalesce(max(c.seq), 0) AS seq FROM streamer.commits c
    ), numbered AS (
        INSERT INTO streamer.commits (seq, txid, committed_at)
        SELECT nextval('streamer.commit_seq'), u.x, at
          FROM unnest(txids) WITH ORDINALITY AS u(x, o)
         ORDER BY u.o
        RETURNING seq
    ), recorded AS (
        UPDATE streamer.ordering
           SET tick_snapshot = cur, ticks = ticks + 1, ticked_at = at
        RETURNING 1
    )
    SELECT b.seq, (SELECT array_agg(n.seq ORDER BY n.seq) FROM numbered n)
      INTO prev, seqs
      FROM before b, recorded;
    PERFORM pg_notify('streamer', streamer.tick_payload(prev, txids, seqs, at));
    RETURN cardinality(txids);
END $$;

-- head() calls tick_txids (and may tick): its statements keep generic
-- plans too. Its body is unchanged (007_ticks.sql).
ALTER FUNCTION streamer.head() SET plan_cache_mode = force_generic_plan;
