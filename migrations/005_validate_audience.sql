-- Validates 004's audience_rule against the rows stored before it existed
-- (all NULL, so it always succeeds). VALIDATE CONSTRAINT scans the table under
-- SHARE UPDATE EXCLUSIVE, which publishers (INSERT), readers (SELECT) and
-- streamer.prune (DELETE) do not conflict with; it is a migration of its own
-- because in 004's transaction the scan would run under 004's exclusive lock.

ALTER TABLE streamer.events VALIDATE CONSTRAINT audience_rule;
