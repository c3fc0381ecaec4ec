-- The events outbox (see meta/sqlite's 0006).
--
-- seq must follow commit order, so that a reader paging by seq never sees
-- a hole filled later. A sequence alone does not give that (a lower value
-- can commit after a higher one was read): the store takes a
-- transaction-level advisory lock just before it writes a transaction's
-- events, at its end, and draws their seq from events_seq under it, so
-- event-writing transactions commit in seq order. A rolled-back
-- transaction leaves a gap that is never filled, which readers tolerate.
CREATE SEQUENCE events_seq;

CREATE TABLE events (
    seq     BIGINT PRIMARY KEY,
    id      TEXT COLLATE "C" NOT NULL UNIQUE,
    type    TEXT NOT NULL,
    repo    TEXT COLLATE "C" NOT NULL,
    actor   TEXT NOT NULL,
    created BIGINT NOT NULL,
    payload TEXT NOT NULL
);

CREATE TABLE event_cursors (
    consumer TEXT COLLATE "C" PRIMARY KEY,
    seq      BIGINT NOT NULL,
    updated  BIGINT NOT NULL
);
