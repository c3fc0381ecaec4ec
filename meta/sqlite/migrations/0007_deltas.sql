-- Flatpak deltas (issue 13, package delta).
--
-- Rows name repositories by name, not id: they outlive nothing (a pair
-- whose target or source manifest is gone is dropped by the delta worker,
-- DropGoneDeltas), and gc never reads them, so manifests and blobs are
-- collected exactly as before. What keeps a delta blob is its delta
-- manifest (an ordinary manifest that references it); what keeps a delta
-- manifest is the _deltaindex index (an ordinary tagged index).

-- Tagged Flatpak images whose deltas were planned: a target is planned
-- once, when the worker first sees it; its pairs are in delta_pairs.
CREATE TABLE delta_targets (
    repo    TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    planned INTEGER NOT NULL,
    PRIMARY KEY (repo, target)
) STRICT;

-- One row per (target, source): a delta from an earlier image of the same
-- ref (source) to the target. state is meta.DeltaState. A pending pair is
-- claimed by one worker at a time: lease_token names it and lease_until
-- (unix ns) ends its claim; a pair whose lease ended is claimed again
-- (the worker died), so a job survives a restart.
CREATE TABLE delta_pairs (
    repo        TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'ready', 'rejected', 'failed')),
    blob        TEXT    NOT NULL DEFAULT '',
    size        INTEGER NOT NULL DEFAULT 0,
    diff_from   TEXT    NOT NULL DEFAULT '',
    diff_to     TEXT    NOT NULL DEFAULT '',
    layer_size  INTEGER NOT NULL DEFAULT 0,
    detail      TEXT    NOT NULL DEFAULT '',
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT    NOT NULL DEFAULT '',
    lease_until INTEGER NOT NULL DEFAULT 0,
    created     INTEGER NOT NULL,
    updated     INTEGER NOT NULL,
    PRIMARY KEY (repo, target, source)
) STRICT;

CREATE INDEX delta_pairs_pending ON delta_pairs (state, lease_until) WHERE state = 'pending';

-- Delta manifests Berth published. retired is 0 while the manifest is
-- listed in the repository's _deltaindex, else when it stopped being
-- listed (unix ns); a retired manifest is deleted after a delay.
CREATE TABLE delta_manifests (
    repo    TEXT    NOT NULL,
    digest  TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    retired INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (repo, digest)
) STRICT;
