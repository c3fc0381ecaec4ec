-- Flatpak install counts (see meta/sqlite's 0008).
CREATE TABLE flatpak_installs (
    day     BIGINT NOT NULL,
    repo    TEXT COLLATE "C" NOT NULL,
    ref     TEXT COLLATE "C" NOT NULL,
    version TEXT COLLATE "C" NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('install', 'update')),
    count   BIGINT NOT NULL,
    PRIMARY KEY (day, repo, ref, version, kind)
);
