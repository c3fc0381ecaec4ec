-- The Flatpak generation: like index_generation (0003), a counter bumped in
-- the writing transaction, but only by changes that can alter an index
-- answer restricted to images with the org.flatpak.ref label (the filter
-- every flatpak client sends). A "plain" manifest is an image manifest
-- without that label: writes of plain manifests, and of tags on them, leave
-- this counter alone, so a busy registry of server images does not
-- invalidate the Flatpak index's cache at every push. Everything else
-- bumps it, conservatively: labelled manifests, indexes (their children
-- may be labelled), tags whose manifest is not a known plain one (a tag
-- deleted after its manifest, in one transaction, counts), and icons.
CREATE TABLE flatpak_generation (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
) STRICT;

INSERT INTO flatpak_generation (id, value) VALUES (1, 1);

CREATE TRIGGER flatpak_generation_manifest_insert AFTER INSERT ON manifests
WHEN NOT (NEW.media_type IN ('application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json')
          AND json_extract(NEW.labels, '$."org.flatpak.ref"') IS NULL)
BEGIN
    UPDATE flatpak_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER flatpak_generation_manifest_update AFTER UPDATE ON manifests
WHEN NOT (NEW.media_type IN ('application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json')
          AND json_extract(NEW.labels, '$."org.flatpak.ref"') IS NULL
          AND OLD.media_type IN ('application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json')
          AND json_extract(OLD.labels, '$."org.flatpak.ref"') IS NULL)
BEGIN
    UPDATE flatpak_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER flatpak_generation_manifest_delete AFTER DELETE ON manifests
WHEN NOT (OLD.media_type IN ('application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json')
          AND json_extract(OLD.labels, '$."org.flatpak.ref"') IS NULL)
BEGIN
    UPDATE flatpak_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER flatpak_generation_tag_insert AFTER INSERT ON tags
WHEN NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = NEW.repo_id AND m.digest = NEW.digest
    AND m.media_type IN ('application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json')
    AND json_extract(m.labels, '$."org.flatpak.ref"') IS NULL)
BEGIN
    UPDATE flatpak_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER flatpak_generation_tag_update AFTER UPDATE ON tags
WHEN (OLD.digest IS NOT NEW.digest OR OLD.name IS NOT NEW.name OR OLD.repo_id IS NOT NEW.repo_id)
 AND (NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = NEW.repo_id AND m.digest = NEW.digest
        AND m.media_type IN ('application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json')
        AND json_extract(m.labels, '$."org.flatpak.ref"') IS NULL)
   OR NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = OLD.repo_id AND m.digest = OLD.digest
        AND m.media_type IN ('application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json')
        AND json_extract(m.labels, '$."org.flatpak.ref"') IS NULL))
BEGIN
    UPDATE flatpak_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER flatpak_generation_tag_delete AFTER DELETE ON tags
WHEN NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = OLD.repo_id AND m.digest = OLD.digest
    AND m.media_type IN ('application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json')
    AND json_extract(m.labels, '$."org.flatpak.ref"') IS NULL)
BEGIN
    UPDATE flatpak_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER flatpak_generation_icon_insert AFTER INSERT ON manifest_icons
BEGIN
    UPDATE flatpak_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER flatpak_generation_icon_update AFTER UPDATE ON manifest_icons
WHEN OLD.icon IS NOT NEW.icon
BEGIN
    UPDATE flatpak_generation SET value = value + 1 WHERE id = 1;
END;

CREATE TRIGGER flatpak_generation_icon_delete AFTER DELETE ON manifest_icons
BEGIN
    UPDATE flatpak_generation SET value = value + 1 WHERE id = 1;
END;
