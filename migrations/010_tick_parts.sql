-- A tick's events in as many notifications as they need (issue #14).
--
-- Until now a tick's notification carried its events only when all of
-- them fit in one (200 events, 7,900 bytes): a tick of twenty 1 KB events,
-- or of the few hundred small ones that a busy second numbers, left them
-- out, and every server read the tick instead (one read per tick per
-- server). Now a tick sends up to sixteen notifications, each carrying the
-- next run of its events in delivery order, split anywhere, within a
-- commit too. What they cannot carry (an event over 7,849 bytes, events
-- past the 2,000th, or past the sixteenth notification) is left to a last
-- notification without events, and readers read from where the last
-- carried event left them.
--
-- The payload, in bytes (decoded by internal/dispatch/tickpayload.go; the
-- tests there run both ends):
--
--   t2 <from> <to> <committed_at, Unix µs> <n>\n
--   then n events as in 008_tick_payload.sql
--
-- <from> and <to> are positions in the delivery order written as resume
-- tokens: "seq" stands after every event of commit seq, "seq.id" after the
-- event (seq, id). A notification holds exactly the events after <from> up
-- to and including <to> (n of them, at least one), or none (n is -1, the
-- header alone). A tick's notifications are contiguous and in order: the
-- first starts at its prev (the head before it, as in 008), each next one
-- where the one before ended, and the last ends at its last seq. They are
-- sent by one transaction, so they arrive together, in that order, after
-- every earlier tick's. Events are split into notifications of under
-- 7,850 bytes of events each, so that with a header (at most 105 bytes) a
-- payload stays under NOTIFY's 8,000. Servers that only know "t1" read
-- instead of applying a "t2" notification (and log that they do not
-- understand it), so a server upgraded after the database still delivers
-- exactly.
--
-- 008's sender check is unchanged: every part comes from the leading
-- sequencer's backend, and a dispatcher applies notifications from it
-- alone.

-- The notifications of a tick that numbered txids as seqs (the same order)
-- after the head prev, at time at: it NOTIFYs every one but the last and
-- returns that, which tick() NOTIFYs (so that tick(), unchanged since 009,
-- need not be restated here). One statement reads the tick's events in
-- delivery order, each as its payload line with where it ends in the run
-- of all lines (at most 2,001 rows: the LIMIT stops the nested loop).
-- Each part then takes as many lines as fit, found by a binary search over
-- those ends, so a part costs a few PL/pgSQL steps, not one per event.
--
-- The arrays are aggregated in the order the window sorted the rows into,
-- without an ORDER BY of their own: a plain aggregate over a subquery
-- takes the rows in the order the subquery returns them, and an ORDER BY
-- in an aggregate costs a sort of its own (four of them were a fifth of
-- the cost of building a tick of 200 events). Should that order ever not
-- hold, no event is misdelivered: a reader refuses a notification whose
-- events do not strictly follow its <from> in order, and any disorder in
-- the concatenation of a tick's notifications is inside one of them or at
-- a boundary, where a part's first event would not follow the <to> its
-- <from> repeats. It reads instead.
CREATE OR REPLACE FUNCTION streamer.tick_payload(prev bigint, txids xid8[], seqs bigint[], at timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    tail  text := ' ' || (extract(epoch FROM at) * 1000000)::bigint || ' ';
    last  text := seqs[cardinality(seqs)]::text;
    lines text[];         -- the events' lines, each starting "<seq> <id> "
    fin   bigint[];       -- fin[k]: bytes of lines 1..k
    total integer;        -- lines read, at most 2,001
    i     integer := 1;   -- the first line not yet sent
    base  bigint := 0;    -- fin[i - 1]
    lo    integer;
    hi    integer;
    mid   integer;
    parts integer := 0;
    since text := prev::text;
    upto  text;           -- where the part in msg ends, as a token
    msg   text;           -- the part not yet sent, from its <committed_at> on
BEGIN
    SELECT array_agg(r.line), array_agg(r.fin)
      INTO lines, fin
      FROM (SELECT r.line, sum(octet_length(r.line)) OVER w AS fin
              FROM (SELECT c.seq, e.id,
                           c.seq || ' ' || e.id || ' ' || octet_length(e.stream) || ' '
                           || coalesce(octet_length(e.event), 0) || ' ' || octet_length(e.data) || ' '
                           || CASE WHEN e.audience IS NULL THEN '-1'
                                   ELSE cardinality(e.audience)
                                        || (SELECT string_agg(' ' || octet_length(a), '' ORDER BY o)
                                              FROM unnest(e.audience) WITH ORDINALITY AS u(a, o))
                              END
                           || E'\n' || e.stream || coalesce(e.event, '') || e.data
                           || coalesce(array_to_string(e.audience, ''), '') AS line
                      FROM unnest(txids, seqs) AS c(txid, seq)
                     CROSS JOIN LATERAL (
                           SELECT e.id, e.stream, e.event, e.data, e.audience
                             FROM streamer.events e
                            WHERE e.txid = c.txid
                            ORDER BY e.txid, e.id
                            LIMIT 2001) e
                     LIMIT 2001) r
            WINDOW w AS (ORDER BY r.seq, r.id ROWS UNBOUNDED PRECEDING)) r;
    total := coalesce(cardinality(lines), 0);
    LOOP
        EXIT WHEN i > least(total, 2000) OR parts = 16 OR fin[i] - base >= 7850;
        -- The last line lo that keeps the part under 7,850 bytes (line i
        -- does).
        lo := i;
        hi := least(total, 2000);
        WHILE lo < hi LOOP
            mid := (lo + hi + 1) / 2;
            IF fin[mid] - base < 7850 THEN
                lo := mid;
            ELSE
                hi := mid - 1;
            END IF;
        END LOOP;
        IF msg IS NOT NULL THEN
            PERFORM pg_notify('streamer', 't2 ' || since || ' ' || upto || msg);
            since := upto;
        END IF;
        msg := tail || (lo - i + 1) || E'\n' || array_to_string(lines[i:lo], '');
        upto := split_part(lines[lo], ' ', 1) || '.' || split_part(lines[lo], ' ', 2);
        parts := parts + 1;
        base := fin[lo];
        i := lo + 1;
    END LOOP;
    IF msg IS NULL THEN
        RETURN 't2 ' || since || ' ' || last || tail || E'-1\n';
    END IF;
    IF i > total THEN
        RETURN 't2 ' || since || ' ' || last || msg;
    END IF;
    PERFORM pg_notify('streamer', 't2 ' || since || ' ' || upto || msg);
    RETURN 't2 ' || upto || ' ' || last || tail || E'-1\n';
END $$;
