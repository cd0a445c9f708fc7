-- Per-event audience (issue #11): NULL means every subscriber of the stream
-- may see the event; otherwise only a connection whose token's sub, or one of
-- whose streamer.audience values, is in the array.
--
-- Publishers' cost: none for a row without an audience. The column is
-- nullable without a default, so ADD COLUMN only changes the catalogue (no
-- table rewrite, no scan); the lock it takes is held for milliseconds, and
-- lock_timeout makes the migration fail (to be run again) rather than queue
-- every publisher behind a long transaction that holds a lock on the table.
-- The CHECK is added NOT VALID, so adding it scans nothing either; 005
-- validates it under a lock that lets publishers and readers go on.
--
-- audience_rule costs one IS NULL test for a row without an audience; for a
-- row with one it is measured in docs/operations-retention.md (a few array
-- functions, no function call of our own).

SET LOCAL lock_timeout = '5s';

ALTER TABLE streamer.events
    ADD COLUMN audience text[] NULL,
    ADD CONSTRAINT audience_rule CHECK (
        audience IS NULL OR (
            array_ndims(audience) = 1
            AND cardinality(audience) BETWEEN 1 AND 1000
            AND array_position(audience, NULL) IS NULL
            AND array_position(audience, '') IS NULL
        )
    ) NOT VALID;

COMMENT ON CONSTRAINT audience_rule ON streamer.events IS
    'audience: NULL, or a one-dimensional array of 1-1000 non-empty, non-NULL values';

-- Publishes one event and returns its id. The old three-argument function is
-- replaced, not overloaded: an overload with a defaulted fourth argument
-- would make every two- and three-argument call ambiguous. Calls written for
-- the old signature (positional, or event => ...) call this one unchanged.
DROP FUNCTION streamer.publish(text, text, text);

CREATE FUNCTION streamer.publish(stream text, data text, event text DEFAULT NULL, audience text[] DEFAULT NULL)
RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO streamer.events (stream, event, data, audience)
    VALUES (publish.stream, publish.event, publish.data, publish.audience)
    RETURNING id
$$;
