-- Berth metadata, SQLite dialect.
--
-- Times are unix nanoseconds (UTC) in INTEGER columns. Text compares with the
-- default BINARY collation, so ORDER BY name is byte order: the lexical order
-- the distribution spec asks of tag and catalog listings (PostgreSQL needs
-- COLLATE "C" for the same). Optional strings are '' rather than NULL; maps are
-- JSON objects, NULL when empty.

CREATE TABLE repositories (
    id      INTEGER PRIMARY KEY,
    name    TEXT    NOT NULL UNIQUE,
    created INTEGER NOT NULL
) STRICT;

-- One row per blob known anywhere, written by LinkBlob; GC's grace period
-- reads created.
CREATE TABLE blobs (
    digest  TEXT    PRIMARY KEY,
    size    INTEGER NOT NULL,
    created INTEGER NOT NULL
) STRICT;

-- Which repository may read which blob.
CREATE TABLE blob_links (
    repo_id INTEGER NOT NULL REFERENCES repositories (id),
    digest  TEXT    NOT NULL REFERENCES blobs (digest),
    created INTEGER NOT NULL,
    PRIMARY KEY (repo_id, digest)
) STRICT;

CREATE INDEX blob_links_digest ON blob_links (digest);

CREATE TABLE manifests (
    repo_id       INTEGER NOT NULL REFERENCES repositories (id),
    digest        TEXT    NOT NULL,
    media_type    TEXT    NOT NULL,
    content       BLOB    NOT NULL,
    size          INTEGER NOT NULL,           -- length of content
    artifact_type TEXT    NOT NULL,
    subject       TEXT    NOT NULL,           -- '' when none
    config        TEXT    NOT NULL,           -- '' for indexes
    annotations   TEXT,                       -- JSON object
    labels        TEXT,                       -- JSON object, from the config
    os            TEXT    NOT NULL,
    architecture  TEXT    NOT NULL,
    variant       TEXT    NOT NULL,
    created       INTEGER,                    -- the config's created
    total_size    INTEGER NOT NULL,
    pushed        INTEGER NOT NULL,
    PRIMARY KEY (repo_id, digest)
) STRICT;

-- Referrers: by subject within a repository, listed in digest order.
CREATE INDEX manifests_subject ON manifests (repo_id, subject, digest);

-- The descriptors a manifest points at, in manifest order (ord).
CREATE TABLE manifest_refs (
    repo_id         INTEGER NOT NULL,
    manifest_digest TEXT    NOT NULL,
    ord             INTEGER NOT NULL,
    ref_digest      TEXT    NOT NULL,
    kind            INTEGER NOT NULL,         -- meta.RefKind
    media_type      TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    platform        TEXT    NOT NULL,
    PRIMARY KEY (repo_id, manifest_digest, ord),
    FOREIGN KEY (repo_id, manifest_digest) REFERENCES manifests (repo_id, digest)
) STRICT;

-- GC: is this blob or manifest referenced, and from which repository.
CREATE INDEX manifest_refs_ref ON manifest_refs (ref_digest, repo_id);

CREATE TABLE tags (
    repo_id INTEGER NOT NULL,
    name    TEXT    NOT NULL,
    digest  TEXT    NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY (repo_id, name),
    FOREIGN KEY (repo_id, digest) REFERENCES manifests (repo_id, digest)
) STRICT;

CREATE INDEX tags_digest ON tags (repo_id, digest);

-- Upload sessions name their repository rather than referencing it: a
-- session does not create the repository; the blob link at commit does.
CREATE TABLE uploads (
    id          TEXT    PRIMARY KEY,
    repo        TEXT    NOT NULL,
    byte_offset INTEGER NOT NULL,
    state       BLOB,
    created     INTEGER NOT NULL,
    updated     INTEGER NOT NULL
) STRICT;

CREATE INDEX uploads_updated ON uploads (updated);
