-- Publishers' cost: do per transaction what 001 did per row.
--
-- 001 fired two PL/pgSQL triggers for every row: a BEFORE trigger that set
-- txid, and the deferred commit-stamping trigger, whose firings after the
-- first in a transaction returned at once but still cost a call each. Here
--
--   * txid keeps its default, pg_current_xact_id(), and a BEFORE trigger
--     guarded by WHEN rejects a row whose txid was set to anything else:
--     the WHEN is a plain expression, so the normal row calls no function;
--   * the statement-level trigger, which already runs once per INSERT
--     statement to NOTIFY, registers the transaction once, by inserting one
--     row into streamer.pending_commits; a deferred constraint trigger on
--     that table fires once per transaction at COMMIT, takes the
--     commit-order lock and records the commit, exactly as before.
--
-- The ordering argument (internal/dispatch/doc.go) is unchanged: one
-- commits row per publishing transaction, numbered under a lock held
-- through COMMIT.

DROP TRIGGER events_set_txid ON streamer.events;
DROP FUNCTION streamer.set_txid();

CREATE FUNCTION streamer.reject_txid() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'new row for relation "events" violates txid_rule'
        USING ERRCODE = 'check_violation',
              CONSTRAINT = 'txid_rule',
              DETAIL = 'txid is set by the database to the inserting transaction; publishers must not set it.';
END $$;

CREATE TRIGGER events_txid_rule
    BEFORE INSERT ON streamer.events
    FOR EACH ROW WHEN (NEW.txid IS DISTINCT FROM pg_current_xact_id())
    EXECUTE FUNCTION streamer.reject_txid();

DROP TRIGGER events_stamp_commit ON streamer.events;
DROP FUNCTION streamer.stamp_commit();

-- Transactions that inserted events and have not committed yet. Unlogged:
-- a row lives only inside its own transaction (the commit trigger deletes
-- it), so there is nothing to recover after a crash.
CREATE UNLOGGED TABLE streamer.pending_commits (
    txid xid8 NOT NULL
);

CREATE FUNCTION streamer.stamp_commit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1400000001, 1);
    INSERT INTO streamer.commits (seq, txid)
        VALUES (nextval('streamer.commit_seq'), NEW.txid);
    DELETE FROM streamer.pending_commits WHERE ctid = NEW.ctid;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER pending_commits_stamp
    AFTER INSERT ON streamer.pending_commits
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION streamer.stamp_commit();

-- Once per INSERT statement: register the transaction (first statement
-- only) and NOTIFY. The setting is transaction-local and, like the pending
-- row, undone by a rolled-back savepoint, so the two always agree.
CREATE OR REPLACE FUNCTION streamer.notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    me text := pg_current_xact_id()::text;
BEGIN
    IF current_setting('streamer.registered_txid', true) IS DISTINCT FROM me THEN
        INSERT INTO streamer.pending_commits (txid) VALUES (pg_current_xact_id());
        PERFORM set_config('streamer.registered_txid', me, true);
    END IF;
    PERFORM pg_notify('streamer', '');
    RETURN NULL;
END $$;
