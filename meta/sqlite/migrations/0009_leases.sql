-- Leases (meta.Leases): work one process of the replicas sharing this store
-- does at a time, such as one webhook endpoint's deliveries. A lease is
-- free when its row is absent or expired.
CREATE TABLE leases (
    name    TEXT    PRIMARY KEY,
    holder  TEXT    NOT NULL,
    expires INTEGER NOT NULL               -- Unix nanoseconds
) STRICT;
