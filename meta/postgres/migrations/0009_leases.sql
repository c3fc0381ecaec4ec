-- Leases (see meta/sqlite's 0009).
CREATE TABLE leases (
    name    TEXT COLLATE "C" PRIMARY KEY,
    holder  TEXT NOT NULL,
    expires BIGINT NOT NULL
);
