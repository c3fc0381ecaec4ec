-- The events outbox (webhooks, issue 9).
--
-- Every change a webhook reports writes one row here in the transaction
-- that makes the change, so no event is lost across a crash and none
-- exists without its change. seq orders the outbox: AUTOINCREMENT never
-- reuses a value, even once pruning has emptied the table, and SQLite's
-- single writer assigns it in commit order, so a reader paging by seq never
-- sees a hole filled later. id is random: receivers de-duplicate on it,
-- and it stays unique if the database is recreated and seq restarts.
-- payload is a JSON object whose shape depends on type.
CREATE TABLE events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    id      TEXT    NOT NULL UNIQUE,
    type    TEXT    NOT NULL,
    repo    TEXT    NOT NULL,               -- '' for gc.run
    actor   TEXT    NOT NULL,               -- '' when no user
    created INTEGER NOT NULL,
    payload TEXT    NOT NULL
) STRICT;

-- One cursor per consumer (a webhook endpoint): the seq of the last event
-- it is done with. Delivery resumes after it when Berth restarts.
CREATE TABLE event_cursors (
    consumer TEXT    PRIMARY KEY,
    seq      INTEGER NOT NULL,
    updated  INTEGER NOT NULL
) STRICT;
