-- Flatpak deltas (see meta/sqlite's 0007).
CREATE TABLE delta_targets (
    repo    TEXT COLLATE "C" NOT NULL,
    target  TEXT COLLATE "C" NOT NULL,
    planned BIGINT NOT NULL,
    PRIMARY KEY (repo, target)
);

CREATE TABLE delta_pairs (
    repo        TEXT COLLATE "C" NOT NULL,
    target      TEXT COLLATE "C" NOT NULL,
    source      TEXT COLLATE "C" NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'rejected', 'failed')),
    blob        TEXT NOT NULL DEFAULT '',
    size        BIGINT NOT NULL DEFAULT 0,
    diff_from   TEXT NOT NULL DEFAULT '',
    diff_to     TEXT NOT NULL DEFAULT '',
    layer_size  BIGINT NOT NULL DEFAULT 0,
    detail      TEXT NOT NULL DEFAULT '',
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT NOT NULL DEFAULT '',
    lease_until BIGINT NOT NULL DEFAULT 0,
    created     BIGINT NOT NULL,
    updated     BIGINT NOT NULL,
    PRIMARY KEY (repo, target, source)
);

CREATE INDEX delta_pairs_pending ON delta_pairs (state, lease_until) WHERE state = 'pending';

CREATE TABLE delta_manifests (
    repo    TEXT COLLATE "C" NOT NULL,
    digest  TEXT COLLATE "C" NOT NULL,
    target  TEXT COLLATE "C" NOT NULL,
    retired BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (repo, digest)
);
