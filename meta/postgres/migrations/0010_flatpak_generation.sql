-- The Flatpak generation (see meta/sqlite's 0010): shards of scope
-- 'flatpak', bumped by every change but those of "plain" manifests (image
-- manifests without the org.flatpak.ref label) and of tags on them.
INSERT INTO index_generation (scope, shard, value)
SELECT 'flatpak', s, CASE WHEN s = 0 THEN 1 ELSE 0 END FROM generate_series(0, 63) s;

CREATE FUNCTION plain_manifest(mt TEXT, labels JSONB) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT mt IN ('application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json')
       AND NOT COALESCE(labels ? 'org.flatpak.ref', false)
$$;

CREATE FUNCTION plain_target(repo BIGINT, d TEXT) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = repo AND m.digest = d
                   AND plain_manifest(m.media_type, m.labels))
$$;

CREATE FUNCTION flatpak_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'manifests' THEN
        IF (TG_OP = 'INSERT' AND plain_manifest(NEW.media_type, NEW.labels))
           OR (TG_OP = 'DELETE' AND plain_manifest(OLD.media_type, OLD.labels))
           OR (TG_OP = 'UPDATE' AND plain_manifest(NEW.media_type, NEW.labels) AND plain_manifest(OLD.media_type, OLD.labels)) THEN
            RETURN NULL;
        END IF;
    ELSIF TG_TABLE_NAME = 'tags' THEN
        IF TG_OP = 'UPDATE' AND OLD.digest IS NOT DISTINCT FROM NEW.digest AND OLD.name IS NOT DISTINCT FROM NEW.name
           AND OLD.repo_id IS NOT DISTINCT FROM NEW.repo_id THEN
            RETURN NULL;
        END IF;
        IF (TG_OP = 'INSERT' AND plain_target(NEW.repo_id, NEW.digest))
           OR (TG_OP = 'DELETE' AND plain_target(OLD.repo_id, OLD.digest))
           OR (TG_OP = 'UPDATE' AND plain_target(NEW.repo_id, NEW.digest) AND plain_target(OLD.repo_id, OLD.digest)) THEN
            RETURN NULL;
        END IF;
    ELSIF TG_TABLE_NAME = 'manifest_icons' AND TG_OP = 'UPDATE' THEN
        IF OLD.icon IS NOT DISTINCT FROM NEW.icon THEN
            RETURN NULL;
        END IF;
    END IF;
    PERFORM bump_generation('flatpak');
    RETURN NULL;
END
$$;

CREATE TRIGGER flatpak_generation_manifests AFTER INSERT OR UPDATE OR DELETE ON manifests
FOR EACH ROW EXECUTE FUNCTION flatpak_generation_bump();
CREATE TRIGGER flatpak_generation_tags AFTER INSERT OR UPDATE OR DELETE ON tags
FOR EACH ROW EXECUTE FUNCTION flatpak_generation_bump();
CREATE TRIGGER flatpak_generation_icons AFTER INSERT OR UPDATE OR DELETE ON manifest_icons
FOR EACH ROW EXECUTE FUNCTION flatpak_generation_bump();
