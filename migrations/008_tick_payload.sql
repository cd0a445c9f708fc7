-- A tick's notification carries its events (issue #14): in the ticks mode
-- every server's dispatcher can fan a tick out without reading it.
--
-- Until now a tick NOTIFYed "streamer" with an empty payload and every
-- server then read the commits after its live position: one read per tick
-- per server, each a statement of its own, which in the streams benchmark
-- (one event per stream per read) cost as much PostgreSQL CPU as the tick.
-- Now the tick, which already holds the ordering row and knows what it
-- numbered, puts those events in the payload, together with the head
-- before it (prev) and after it (new). A dispatcher whose live position is
-- "after every event of prev" applies them as the read would have returned
-- them; any other (behind, or mid-commit after a full page) reads as before.
-- The argument is in internal/dispatch/doc.go, "Ticks".
--
-- The payload, in bytes (decoded by internal/dispatch/tickpayload.go; the
-- test there runs both ends):
--
--   t1 <prev> <new> <committed_at, Unix µs> <n>\n
--   then n events in delivery order, each
--   <seq> <id> <len stream> <len event> <len data> <audience: -1 | k len_1 .. len_k>\n
--   <stream><event><data><audience value 1>..<audience value k>
--
-- Lengths are octet lengths; a NULL event type is written as length 0 (the
-- column's rule forbids the empty string). n is -1 when the events were left
-- out (more than 200, or a payload over 7,999 bytes, NOTIFY's limit): the
-- header still says which commits the tick numbered, and readers read.
-- Trigger mode's NOTIFYs keep their empty payload.
--
-- Anyone who may connect may NOTIFY on any channel, so a payload alone
-- proves nothing: a forged one could hand every server events that were
-- never committed and move it past ones that were. A notification's sender
-- PID cannot be forged, so the leading sequencer records its backend's PID
-- in streamer.ordering.sequencer_pid (after its first tick in ticks mode,
-- internal/sequencer), and a dispatcher applies a payload only from that
-- backend; from any other (a forger, or a tick run by streamer.head()) it
-- reads instead.

ALTER TABLE streamer.ordering ADD COLUMN sequencer_pid integer NULL;
COMMENT ON COLUMN streamer.ordering.sequencer_pid IS
    'backend PID of the leading sequencer, recorded by it in ticks mode; dispatchers apply tick notifications from it alone';

-- The payload of a tick that numbered txids as seqs (the same order) after
-- the head prev, at time at; see the top of this file. A function of its
-- own so that its one statement keeps a generic plan: planned anew at every
-- tick it cost more than running it.
CREATE FUNCTION streamer.tick_payload(prev bigint, txids xid8[], seqs bigint[], at timestamptz) RETURNS text
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    n    bigint;
    size bigint;
    body text;
    -- The header, less n; alone (about 80 bytes) when the events do not fit.
    head text := 't1 ' || prev || ' ' || seqs[cardinality(seqs)] || ' '
                 || (extract(epoch FROM at) * 1000000)::bigint || ' ';
BEGIN
    -- One statement (each one costs an executor start-up): up to 201 rows;
    -- their number and estimated size over all of them; and a line for
    -- each only when they can fit (not more than 200, not 7,900 bytes), so
    -- a tick of a burst or of transactions of many rows builds nothing.
    SELECT max(x.n), max(x.size),
           string_agg(CASE WHEN x.n <= 200 AND x.size < 7900 THEN
                          x.seq || ' ' || x.id || ' ' || octet_length(x.stream) || ' '
                          || coalesce(octet_length(x.event), 0) || ' ' || octet_length(x.data) || ' '
                          || CASE WHEN x.audience IS NULL THEN '-1'
                                  ELSE cardinality(x.audience)
                                       || (SELECT string_agg(' ' || octet_length(a), '' ORDER BY o)
                                             FROM unnest(x.audience) WITH ORDINALITY AS u(a, o))
                             END
                          || E'\n' || x.stream || coalesce(x.event, '') || x.data
                          || coalesce(array_to_string(x.audience, ''), '')
                      END, '' ORDER BY x.seq, x.id)
      INTO n, size, body
      FROM (SELECT r.*, count(*) OVER () AS n,
                   sum(octet_length(r.stream) + coalesce(octet_length(r.event), 0) + octet_length(r.data)
                       + coalesce(octet_length(array_to_string(r.audience, '')) + 8 * cardinality(r.audience), 0)
                       + octet_length(r.seq::text) + octet_length(r.id::text) + 20) OVER () AS size
              FROM (SELECT c.seq, e.id, e.stream, e.event, e.data, e.audience
                      FROM unnest(txids, seqs) AS c(txid, seq)
                      CROSS JOIN LATERAL (
                          SELECT e.id, e.stream, e.event, e.data, e.audience
                            FROM streamer.events e
                           WHERE e.txid = c.txid
                           ORDER BY e.txid, e.id
                           LIMIT 201) e
                     LIMIT 201) r) x;
    IF n <= 200 AND size < 7900 AND octet_length(body) < 7900 THEN
        RETURN head || n || E'\n' || body;
    END IF;
    RETURN head || E'-1\n';
END $$;

-- Records one tick; see 007_ticks.sql for what it numbers and why. Unchanged
-- but for what the NOTIFY says.
CREATE OR REPLACE FUNCTION streamer.tick() RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    st      streamer.ordering;
    seen    text;
    cur     pg_snapshot;
    txids   xid8[];
    seqs    bigint[] := '{}';
    at      timestamptz;
    one     xid8;
    s       bigint;
    prev    bigint;
    body    text;
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
    -- The head before this tick. Holding the ordering row, this statement
    -- sees every earlier tick (READ COMMITTED: a new snapshot after the
    -- lock), and in the ticks mode nothing else takes seqs, so the seqs
    -- after prev up to this tick's last are exactly this tick's.
    SELECT coalesce(max(c.seq), 0) INTO prev FROM streamer.commits c;
    at := clock_timestamp();
    FOREACH one IN ARRAY txids LOOP
        INSERT INTO streamer.commits (seq, txid, committed_at)
        VALUES (nextval('streamer.commit_seq'), one, at)
        RETURNING seq INTO s;
        seqs := seqs || s;
    END LOOP;
    UPDATE streamer.ordering
       SET tick_snapshot = cur, ticks = ticks + 1, ticked_at = at;
    body := streamer.tick_payload(prev, txids, seqs, at);
    PERFORM pg_notify('streamer', body);
    RETURN cardinality(txids);
END $$;
