-- The Flatpak remote: index generation counter and icons.
--
-- index_generation holds one counter that increases, in the writing
-- transaction itself, with every change to manifests, tags or the icons
-- manifests show: the Flatpak index (package flatpak) keys its ETag and its
-- cache on it. A tag moved to the digest it already had changes nothing and
-- does not count.
CREATE TABLE index_generation (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
) STRICT;

INSERT INTO index_generation (id, value) VALUES (1, 1);

CREATE TRIGGER index_generation_manifest_insert AFTER INSERT ON manifests
BEGIN
    UPDATE index_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER index_generation_manifest_update AFTER UPDATE ON manifests
BEGIN
    UPDATE index_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER index_generation_manifest_delete AFTER DELETE ON manifests
BEGIN
    UPDATE index_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER index_generation_tag_insert AFTER INSERT ON tags
BEGIN
    UPDATE index_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER index_generation_tag_update AFTER UPDATE ON tags
WHEN OLD.digest IS NOT NEW.digest OR OLD.name IS NOT NEW.name OR OLD.repo_id IS NOT NEW.repo_id
BEGIN
    UPDATE index_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER index_generation_tag_delete AFTER DELETE ON tags
BEGIN
    UPDATE index_generation SET value = value + 1 WHERE id = 1;
END;

-- Icons decoded from org.freedesktop.appstream.icon-64/-128 at push time:
-- each PNG once, by the sha256 digest of its bytes.
CREATE TABLE icons (
    digest  TEXT    PRIMARY KEY,
    png     BLOB    NOT NULL,
    created INTEGER NOT NULL
) STRICT;

-- Which manifest shows which icon, per size (64, 128). Rows go with their
-- manifest, and an icon goes with its last row (triggers below), so icons
-- need no garbage collection of their own.
CREATE TABLE manifest_icons (
    repo_id         INTEGER NOT NULL,
    manifest_digest TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    icon            TEXT    NOT NULL REFERENCES icons (digest),
    PRIMARY KEY (repo_id, manifest_digest, size)
) STRICT;

CREATE INDEX manifest_icons_icon ON manifest_icons (icon);

CREATE TRIGGER manifest_icons_of_deleted_manifest AFTER DELETE ON manifests
BEGIN
    DELETE FROM manifest_icons WHERE repo_id = OLD.repo_id AND manifest_digest = OLD.digest;
END;

CREATE TRIGGER icons_unused_after_delete AFTER DELETE ON manifest_icons
WHEN NOT EXISTS (SELECT 1 FROM manifest_icons WHERE icon = OLD.icon)
BEGIN
    DELETE FROM icons WHERE digest = OLD.icon;
END;

CREATE TRIGGER icons_unused_after_update AFTER UPDATE OF icon ON manifest_icons
WHEN OLD.icon IS NOT NEW.icon AND NOT EXISTS (SELECT 1 FROM manifest_icons WHERE icon = OLD.icon)
BEGIN
    DELETE FROM icons WHERE digest = OLD.icon;
END;

-- The index offers /icons/ URLs for the icons recorded here, and icons are
-- recorded just after their manifest's push: that changes the answer too.
CREATE TRIGGER index_generation_icon_insert AFTER INSERT ON manifest_icons
BEGIN
    UPDATE index_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER index_generation_icon_update AFTER UPDATE ON manifest_icons
WHEN OLD.icon IS NOT NEW.icon
BEGIN
    UPDATE index_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER index_generation_icon_delete AFTER DELETE ON manifest_icons
BEGIN
    UPDATE index_generation SET value = value + 1 WHERE id = 1;
END;
