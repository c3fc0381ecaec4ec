-- Flatpak install counts (issue 13): installs and updates per day, ref
-- and version (the manifest digest installed), aggregated as they are
-- counted. Rows outlive the manifests they name: totals per ref keep the
-- history; the catalogue shows versions that still exist. gc never reads
-- this table.
CREATE TABLE flatpak_installs (
    day     INTEGER NOT NULL,               -- days since 1970-01-01, UTC
    repo    TEXT    NOT NULL,
    ref     TEXT    NOT NULL,               -- app|runtime/ID/ARCH/BRANCH
    version TEXT    NOT NULL,               -- manifest digest
    kind    TEXT    NOT NULL CHECK (kind IN ('install', 'update')),
    count   INTEGER NOT NULL,
    PRIMARY KEY (day, repo, ref, version, kind)
) STRICT;
