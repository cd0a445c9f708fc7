-- streamer's event log and commit order. The argument for why this order lets
-- no committed event be skipped or repeated is in internal/dispatch/doc.go.

CREATE TABLE streamer.events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream     text NOT NULL,
    event      text NULL,
    data       text NOT NULL,
    -- The inserting transaction; set by a trigger, never by the publisher.
    txid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stream_name_rule
        CHECK (stream ~ '^[A-Za-z0-9][A-Za-z0-9_.:/@=+-]{0,199}$'),
    CONSTRAINT event_type_rule
        CHECK (event IS NULL OR event ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    CONSTRAINT event_type_reserved_rule
        CHECK (event IS NULL OR event NOT LIKE 'streamer.%'),
    CONSTRAINT data_size_rule
        CHECK (octet_length(data) <= 1048576)
);

COMMENT ON CONSTRAINT stream_name_rule ON streamer.events IS
    'stream name: 1-200 characters from A-Z a-z 0-9 _ . : / @ = + -, starting with a letter or digit';
COMMENT ON CONSTRAINT event_type_rule ON streamer.events IS
    'event type: NULL, or 1-64 characters from A-Z a-z 0-9 _ . : -';
COMMENT ON CONSTRAINT event_type_reserved_rule ON streamer.events IS
    'event types starting with "streamer." are reserved for the server';
COMMENT ON CONSTRAINT data_size_rule ON streamer.events IS
    'data: at most 1 MiB (1,048,576 bytes)';

-- Join path from a commit to its events, in insertion order.
CREATE INDEX events_txid_id_idx ON streamer.events (txid, id);

-- One row per committed publishing transaction. seq is taken under a
-- transaction-level advisory lock that is held through COMMIT, so seq order is
-- commit order and a visible seq implies every lower seq is visible or rolled back.
CREATE TABLE streamer.commits (
    seq          bigint PRIMARY KEY,
    txid         xid8 NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE SEQUENCE streamer.commit_seq AS bigint;

-- Pins txid to the inserting transaction, whatever the publisher wrote.
CREATE FUNCTION streamer.set_txid() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.txid := pg_current_xact_id();
    RETURN NEW;
END $$;

CREATE TRIGGER events_set_txid
    BEFORE INSERT ON streamer.events
    FOR EACH ROW EXECUTE FUNCTION streamer.set_txid();

-- Runs at COMMIT (deferred). The first firing in a transaction takes the
-- commit-order lock and records the commit; later firings return at once.
CREATE FUNCTION streamer.stamp_commit() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    me text := pg_current_xact_id()::text;
BEGIN
    IF current_setting('streamer.stamped_txid', true) IS NOT DISTINCT FROM me THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(1400000001, 1);
    INSERT INTO streamer.commits (seq, txid)
        VALUES (nextval('streamer.commit_seq'), pg_current_xact_id());
    PERFORM set_config('streamer.stamped_txid', me, true);
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER events_stamp_commit
    AFTER INSERT ON streamer.events
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION streamer.stamp_commit();

-- One NOTIFY per statement, not per row. Identical notifications in one
-- transaction are folded into one by PostgreSQL.
CREATE FUNCTION streamer.notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('streamer', '');
    RETURN NULL;
END $$;

CREATE TRIGGER events_notify
    AFTER INSERT ON streamer.events
    FOR EACH STATEMENT EXECUTE FUNCTION streamer.notify();

-- Publishes one event and returns its id.
CREATE FUNCTION streamer.publish(stream text, data text, event text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO streamer.events (stream, event, data)
    VALUES (publish.stream, publish.event, publish.data)
    RETURNING id
$$;

-- A resume token meaning "everything committed so far" (see internal/cursor).
CREATE FUNCTION streamer.head() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(max(seq), 0)::text FROM streamer.commits
$$;
