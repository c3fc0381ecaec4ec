-- The Flatpak remote: index generation and icons (see meta/sqlite's 0003).
--
-- SQLite keeps one counter row; here a single row bumped by every push
-- would serialise them all. The generation of a scope is the sum of its
-- 64 shards, read in the snapshot of the data it versions; each change
-- adds one to a shard chosen at random, so concurrent writers rarely meet
-- on a row, and every commit raises the sum.
CREATE TABLE index_generation (
    scope TEXT    NOT NULL,               -- 'all' (0003) or 'flatpak' (0010)
    shard INTEGER NOT NULL,
    value BIGINT  NOT NULL,
    PRIMARY KEY (scope, shard)
);

INSERT INTO index_generation (scope, shard, value)
SELECT 'all', s, CASE WHEN s = 0 THEN 1 ELSE 0 END FROM generate_series(0, 63) s;

CREATE FUNCTION bump_generation(sc TEXT) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n INTEGER := floor(random() * 64)::int;  -- once, not per row compared
BEGIN
    UPDATE index_generation SET value = value + 1 WHERE scope = sc AND shard = n;
END
$$;

CREATE FUNCTION index_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'tags' AND TG_OP = 'UPDATE' THEN
        IF OLD.digest IS NOT DISTINCT FROM NEW.digest AND OLD.name IS NOT DISTINCT FROM NEW.name
           AND OLD.repo_id IS NOT DISTINCT FROM NEW.repo_id THEN
            RETURN NULL;
        END IF;
    ELSIF TG_TABLE_NAME = 'manifest_icons' AND TG_OP = 'UPDATE' THEN
        IF OLD.icon IS NOT DISTINCT FROM NEW.icon THEN
            RETURN NULL;
        END IF;
    END IF;
    PERFORM bump_generation('all');
    RETURN NULL;
END
$$;

CREATE TRIGGER index_generation_manifests AFTER INSERT OR UPDATE OR DELETE ON manifests
FOR EACH ROW EXECUTE FUNCTION index_generation_bump();
CREATE TRIGGER index_generation_tags AFTER INSERT OR UPDATE OR DELETE ON tags
FOR EACH ROW EXECUTE FUNCTION index_generation_bump();

CREATE TABLE icons (
    digest  TEXT COLLATE "C" PRIMARY KEY,
    png     BYTEA  NOT NULL,
    created BIGINT NOT NULL
);

CREATE TABLE manifest_icons (
    repo_id         BIGINT NOT NULL,
    manifest_digest TEXT COLLATE "C" NOT NULL,
    size            INTEGER NOT NULL,
    icon            TEXT COLLATE "C" NOT NULL REFERENCES icons (digest),
    PRIMARY KEY (repo_id, manifest_digest, size)
);

CREATE INDEX manifest_icons_icon ON manifest_icons (icon);

CREATE FUNCTION manifest_icons_of_deleted_manifest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM manifest_icons WHERE repo_id = OLD.repo_id AND manifest_digest = OLD.digest;
    RETURN NULL;
END
$$;

CREATE TRIGGER manifest_icons_of_deleted_manifest AFTER DELETE ON manifests
FOR EACH ROW EXECUTE FUNCTION manifest_icons_of_deleted_manifest();

CREATE FUNCTION icons_unused() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.icon IS NOT DISTINCT FROM NEW.icon THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM manifest_icons WHERE icon = OLD.icon) THEN
        DELETE FROM icons WHERE digest = OLD.icon;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER icons_unused AFTER DELETE OR UPDATE OF icon ON manifest_icons
FOR EACH ROW EXECUTE FUNCTION icons_unused();

CREATE TRIGGER index_generation_icons AFTER INSERT OR UPDATE OR DELETE ON manifest_icons
FOR EACH ROW EXECUTE FUNCTION index_generation_bump();
