package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// The Flatpak registry index and icons (package flatpak's Meta and
// IconStore; the contract is meta/metatest.RunIndex). The index queries are
// built from a filter, so they are composed here rather than prepared at
// Open; the fixed ones are constants like every other query.

// The AppStream icon labels (package flatpak's LabelIcon64 and
// LabelIcon128).
const (
	iconLabel64  = "org.freedesktop.appstream.icon-64"
	iconLabel128 = "org.freedesktop.appstream.icon-128"
)

const (
	qIndexGeneration   = `SELECT value FROM index_generation WHERE id = 1`
	qFlatpakGeneration = `SELECT value FROM flatpak_generation WHERE id = 1`

	// Image manifest and index media types, as SQL lists.
	imageTypesSQL = `('application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json')`
	listTypesSQL  = `('application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json')`

	// Tagged image manifests; %[1]s adds conditions on m and r, %[2]s on
	// the tag t.
	qIndexImages = `SELECT r.name, m.digest, m.media_type, m.annotations, m.labels, m.os, m.architecture,
    m.variant, m.created, m.total_size, m.pushed,
    (SELECT json_group_array(t.name) FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest),
    (SELECT json_group_object(i.size, i.icon) FROM manifest_icons i WHERE i.repo_id = m.repo_id AND i.manifest_digest = m.digest)
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE m.media_type IN ` + imageTypesSQL + `
  AND EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest%[2]s)%[1]s
ORDER BY r.name, m.digest`

	// The image manifests of tagged indexes; %[1]s adds conditions on the
	// child c and r, %[2]s on the index's tag t.
	qIndexListImages = `SELECT r.name, l.digest, l.media_type, l.annotations,
    (SELECT json_group_array(t.name) FROM tags t WHERE t.repo_id = l.repo_id AND t.digest = l.digest),
    c.digest, c.media_type, c.annotations, c.labels, c.os, c.architecture,
    c.variant, c.created, c.total_size, c.pushed,
    (SELECT json_group_object(i.size, i.icon) FROM manifest_icons i WHERE i.repo_id = c.repo_id AND i.manifest_digest = c.digest)
FROM manifests l
JOIN repositories r ON r.id = l.repo_id
JOIN manifest_refs f ON f.repo_id = l.repo_id AND f.manifest_digest = l.digest AND f.kind = 2
JOIN manifests c ON c.repo_id = f.repo_id AND c.digest = f.ref_digest
WHERE l.media_type IN ` + listTypesSQL + `
  AND c.media_type IN ` + imageTypesSQL + `
  AND EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = l.repo_id AND t.digest = l.digest%[2]s)%[1]s
ORDER BY r.name, l.digest, f.ord`

	qIconManifestExists = `SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repo_id
WHERE r.name = $1 AND m.digest = $2`
	qInsertIcon = `INSERT INTO icons (digest, png, created) VALUES ($1, $2, $3)
ON CONFLICT (digest) DO NOTHING`
	qPutManifestIcon = `INSERT INTO manifest_icons (repo_id, manifest_digest, size, icon)
VALUES ((SELECT id FROM repositories WHERE name = $1), $2, $3, $4)
ON CONFLICT (repo_id, manifest_digest, size) DO UPDATE SET icon = excluded.icon`
	qIcon = `SELECT png FROM icons WHERE digest = $1`
	// Manifests whose icon labels (or annotations) hold data: URIs and
	// which show no icon, after the cursor ($1, $2), at most $3.
	qManifestsWithoutIcons = `SELECT r.name, m.digest,
    json_extract(m.labels, $4), json_extract(m.labels, $5),
    json_extract(m.annotations, $4), json_extract(m.annotations, $5)
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE (r.name, m.digest) > ($1, $2)
  AND (json_extract(m.labels, $4) LIKE 'data:%'
    OR json_extract(m.labels, $5) LIKE 'data:%'
    OR json_extract(m.annotations, $4) LIKE 'data:%'
    OR json_extract(m.annotations, $5) LIKE 'data:%')
  AND NOT EXISTS (SELECT 1 FROM manifest_icons i WHERE i.repo_id = m.repo_id AND i.manifest_digest = m.digest)
ORDER BY r.name, m.digest LIMIT $3`
	// The icons of the manifests named in $1, a JSON array of
	// [repository, digest] pairs.
	qManifestIcons = `SELECT k.value ->> 0, k.value ->> 1, i.size, i.icon
FROM json_each($1) k
JOIN repositories r ON r.name = k.value ->> 0
JOIN manifest_icons i ON i.repo_id = r.id AND i.manifest_digest = k.value ->> 1`
)

// generationQuery is the query of a scope's counter: index_generation
// (migration 0003) or flatpak_generation (0010).
func generationQuery(scope meta.IndexScope) string {
	if scope == meta.ScopeFlatpak {
		return qFlatpakGeneration
	}
	return qIndexGeneration
}

// IndexGeneration returns the index generation of scope: a counter that
// increases with every committed change to manifests, tags or icons
// (push, tag move, delete, garbage collection) that can alter answers of
// that scope, and only then.
func (s *Store) IndexGeneration(ctx context.Context, scope meta.IndexScope) (int64, error) {
	var g int64
	if err := s.r.queryRow(ctx, generationQuery(scope)).Scan(&g); err != nil {
		return 0, fmt.Errorf("sqlite: index generation: %w", err)
	}
	return g, nil
}

// IndexImages implements the store side of the Flatpak registry index
// (see metatest.IndexStore for the contract). It reads one snapshot, the
// icons each image shows included, and returns the generation of that
// snapshot.
func (s *Store) IndexImages(ctx context.Context, filter meta.IndexFilter,
	fn func(img, list *meta.Manifest, tags []string, icons map[int]digest.Digest) error) (int64, error) {
	f := compileIndexFilter(filter)
	tx, err := s.r.begin(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, fmt.Errorf("sqlite: index: %w", err)
	}
	defer tx.tx.Rollback()
	var gen int64
	if err := tx.tx.QueryRowContext(ctx, generationQuery(filter.Scope())).Scan(&gen); err != nil {
		return 0, fmt.Errorf("sqlite: index generation: %w", err)
	}
	if f.empty {
		return gen, nil
	}
	if err := indexImages(ctx, tx.tx, f, fn); err != nil {
		return 0, err
	}
	if err := indexListImages(ctx, tx.tx, f, fn); err != nil {
		return 0, err
	}
	return gen, nil
}

func indexImages(ctx context.Context, tx *sql.Tx, f *indexFilter, fn func(img, list *meta.Manifest, tags []string, icons map[int]digest.Digest) error) error {
	q, args := f.sql(qIndexImages, "m")
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("sqlite: index images: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			m       meta.Manifest
			dgst    string
			ann, lb sql.NullString
			created sql.NullInt64
			pushed  int64
			tagsRaw string
			iconRaw string
		)
		if err := rows.Scan(&m.Repo, &dgst, &m.MediaType, &ann, &lb, &m.OS, &m.Architecture,
			&m.Variant, &created, &m.TotalSize, &pushed, &tagsRaw, &iconRaw); err != nil {
			return fmt.Errorf("sqlite: index images: %w", err)
		}
		if err := fillIndexManifest(&m, dgst, ann, lb, created, pushed); err != nil {
			return err
		}
		var tags []string
		if err := json.Unmarshal([]byte(tagsRaw), &tags); err != nil {
			return fmt.Errorf("sqlite: index images: tags of %s@%s: %w", m.Repo, dgst, err)
		}
		icons, err := decodeIcons(iconRaw)
		if err != nil {
			return fmt.Errorf("sqlite: index images: icons of %s@%s: %w", m.Repo, dgst, err)
		}
		if err := fn(&m, nil, tags, icons); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: index images: %w", err)
	}
	return nil
}

func indexListImages(ctx context.Context, tx *sql.Tx, f *indexFilter, fn func(img, list *meta.Manifest, tags []string, icons map[int]digest.Digest) error) error {
	q, args := f.sql(qIndexListImages, "c")
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("sqlite: index lists: %w", err)
	}
	defer rows.Close()
	var (
		list     *meta.Manifest
		listTags []string
	)
	for rows.Next() {
		var (
			l, m          meta.Manifest
			ldgst, dgst   string
			lann, ann, lb sql.NullString
			created       sql.NullInt64
			pushed        int64
			tagsRaw       string
			iconRaw       string
		)
		if err := rows.Scan(&l.Repo, &ldgst, &l.MediaType, &lann, &tagsRaw,
			&dgst, &m.MediaType, &ann, &lb, &m.OS, &m.Architecture,
			&m.Variant, &created, &m.TotalSize, &pushed, &iconRaw); err != nil {
			return fmt.Errorf("sqlite: index lists: %w", err)
		}
		if list == nil || list.Repo != l.Repo || string(list.Digest) != ldgst {
			l.Digest = digest.Digest(ldgst)
			var err error
			if l.Annotations, err = decodeMap(lann); err != nil {
				return fmt.Errorf("sqlite: index lists: annotations of %s@%s: %w", l.Repo, ldgst, err)
			}
			listTags = nil
			if err := json.Unmarshal([]byte(tagsRaw), &listTags); err != nil {
				return fmt.Errorf("sqlite: index lists: tags of %s@%s: %w", l.Repo, ldgst, err)
			}
			list = &l
		}
		m.Repo = list.Repo
		if err := fillIndexManifest(&m, dgst, ann, lb, created, pushed); err != nil {
			return err
		}
		icons, err := decodeIcons(iconRaw)
		if err != nil {
			return fmt.Errorf("sqlite: index lists: icons of %s@%s: %w", m.Repo, dgst, err)
		}
		if err := fn(&m, list, listTags, icons); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: index lists: %w", err)
	}
	return nil
}

// decodeIcons reads a JSON object of size → icon digest; never nil.
func decodeIcons(raw string) (map[int]digest.Digest, error) {
	var byName map[string]string
	if err := json.Unmarshal([]byte(raw), &byName); err != nil {
		return nil, err
	}
	out := make(map[int]digest.Digest, len(byName))
	for k, v := range byName {
		size, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("icon size %q: %w", k, err)
		}
		out[size] = digest.Digest(v)
	}
	return out, nil
}

func fillIndexManifest(m *meta.Manifest, dgst string, ann, lb sql.NullString, created sql.NullInt64, pushed int64) error {
	m.Digest = digest.Digest(dgst)
	m.Created, m.Pushed = fromNullNanos(created), fromNanos(pushed)
	var err error
	if m.Annotations, err = decodeMap(ann); err != nil {
		return fmt.Errorf("sqlite: index: annotations of %s@%s: %w", m.Repo, dgst, err)
	}
	if m.Labels, err = decodeMap(lb); err != nil {
		return fmt.Errorf("sqlite: index: labels of %s@%s: %w", m.Repo, dgst, err)
	}
	return nil
}

// indexFilter is a compiled index filter: SQL conditions and their
// arguments, on the repository and tag and on the image manifest.
type indexFilter struct {
	repos, tags, oses, archs []string
	maps                     []mapCond
	// empty: some key has no values, so nothing matches.
	empty bool
}

// mapCond is one label or annotation condition of the filter.
type mapCond struct {
	column string // "labels" or "annotations"
	key    string
	exists bool
	values []string
}

// compileIndexFilter maps the typed filter onto the columns.
func compileIndexFilter(filter meta.IndexFilter) *indexFilter {
	f := &indexFilter{repos: filter.Repositories, tags: filter.Tags, oses: filter.OS, archs: filter.Architectures, empty: filter.None}
	for _, c := range filter.Maps {
		column := "labels"
		if c.Annotation {
			column = "annotations"
		}
		f.maps = append(f.maps, mapCond{column: column, key: c.Key, exists: c.Exists, values: c.Values})
	}
	return f
}

// sql fills the template's conditions: %[1]s on the repository r and the
// image alias, %[2]s on the tag t.
func (f *indexFilter) sql(template, alias string) (string, []any) {
	var (
		args []any
		cond strings.Builder
		tag  strings.Builder
	)
	in := func(b *strings.Builder, expr string, vals []string) {
		b.WriteString(" AND ")
		b.WriteString(expr)
		b.WriteString(" IN (")
		for i, v := range vals {
			if i > 0 {
				b.WriteString(", ")
			}
			args = append(args, v)
			fmt.Fprintf(b, "$%d", len(args))
		}
		b.WriteString(")")
	}
	if len(f.tags) > 0 {
		in(&tag, "t.name", f.tags)
	}
	if len(f.repos) > 0 {
		in(&cond, "r.name", f.repos)
	}
	if len(f.oses) > 0 {
		in(&cond, alias+".os", f.oses)
	}
	if len(f.archs) > 0 {
		in(&cond, alias+".architecture", f.archs)
	}
	for _, c := range f.maps {
		args = append(args, c.key)
		fmt.Fprintf(&cond, "\n  AND EXISTS (SELECT 1 FROM json_each(%s.%s) j WHERE j.key = $%d", alias, c.column, len(args))
		if !c.exists {
			in(&cond, "j.value", c.values)
		}
		cond.WriteString(")")
	}
	return fmt.Sprintf(template, cond.String(), tag.String()), args
}

// PutIcon stores png under its digest d (once, whoever else shows it) and
// records that the manifest key shows it as its icon of the given size,
// replacing the one it had. It returns an error wrapping
// meta.ErrManifestNotFound when the manifest is not stored (it may have
// been deleted since it was pushed). The caller has checked the PNG and
// that d is its sha256 digest.
func (s *Store) PutIcon(ctx context.Context, key meta.ManifestKey, size int, d digest.Digest, png []byte) error {
	err := s.write(ctx, func(tx txn) error {
		var one int
		if err := tx.tx.QueryRowContext(tx.ctx, qIconManifestExists, key.Repo, string(key.Digest)).Scan(&one); err != nil {
			return err
		}
		if _, err := tx.tx.ExecContext(tx.ctx, qInsertIcon, string(d), png, now()); err != nil {
			return err
		}
		_, err := tx.tx.ExecContext(tx.ctx, qPutManifestIcon, key.Repo, string(key.Digest), size, string(d))
		return err
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("icon of %s@%s: %w", key.Repo, key.Digest, meta.ErrManifestNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: put icon %s of %s@%s: %w", d, key.Repo, key.Digest, err)
	}
	return nil
}

// Icon returns the PNG bytes of the icon whose digest is d; ok is false
// if no manifest shows such an icon.
func (s *Store) Icon(ctx context.Context, d digest.Digest) (png []byte, ok bool, err error) {
	err = s.r.db.QueryRowContext(ctx, qIcon, string(d)).Scan(&png)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("sqlite: icon %s: %w", d, err)
	}
	return png, true, nil
}

// ManifestIcons returns the icons each of the manifests keys shows, by
// size; manifests without icons (or unknown) are absent from the map,
// which is never nil.
func (s *Store) ManifestIcons(ctx context.Context, keys ...meta.ManifestKey) (map[meta.ManifestKey]map[int]digest.Digest, error) {
	out := map[meta.ManifestKey]map[int]digest.Digest{}
	if len(keys) == 0 {
		return out, nil
	}
	pairs := make([][2]string, len(keys))
	for i, k := range keys {
		pairs[i] = [2]string{k.Repo, string(k.Digest)}
	}
	arg, err := json.Marshal(pairs)
	if err != nil {
		return nil, fmt.Errorf("sqlite: manifest icons: %w", err)
	}
	rows, err := s.r.db.QueryContext(ctx, qManifestIcons, string(arg))
	if err != nil {
		return nil, fmt.Errorf("sqlite: manifest icons: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			key     meta.ManifestKey
			d, icon string
			size    int
		)
		if err := rows.Scan(&key.Repo, &d, &size, &icon); err != nil {
			return nil, fmt.Errorf("sqlite: manifest icons: %w", err)
		}
		key.Digest = digest.Digest(d)
		if out[key] == nil {
			out[key] = map[int]digest.Digest{}
		}
		out[key][size] = digest.Digest(icon)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: manifest icons: %w", err)
	}
	return out, nil
}

// ManifestsWithoutIcons lists, by (repository, digest) strictly after the
// cursor and at most n of them (n < 0: no limit), the manifests whose
// AppStream icon labels or annotations hold a data: URI and which show no
// icon: those pushed while icons were not recorded, or whose icons did not
// decode. Each has Repo, Digest, and in Labels and Annotations only those
// icon keys. The result is never nil.
func (s *Store) ManifestsWithoutIcons(ctx context.Context, after meta.ManifestKey, n int) ([]meta.Manifest, error) {
	out := []meta.Manifest{}
	if n == 0 {
		return out, nil
	}
	rows, err := s.r.db.QueryContext(ctx, qManifestsWithoutIcons, after.Repo, string(after.Digest), limit(n),
		labelPath(iconLabel64), labelPath(iconLabel128))
	if err != nil {
		return nil, fmt.Errorf("sqlite: manifests without icons: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			m                    meta.Manifest
			d                    string
			l64, l128, a64, a128 sql.NullString
		)
		if err := rows.Scan(&m.Repo, &d, &l64, &l128, &a64, &a128); err != nil {
			return nil, fmt.Errorf("sqlite: manifests without icons: %w", err)
		}
		m.Digest = digest.Digest(d)
		m.Labels, m.Annotations = map[string]string{}, map[string]string{}
		for _, v := range []struct {
			dst map[string]string
			key string
			val sql.NullString
		}{{m.Labels, iconLabel64, l64}, {m.Labels, iconLabel128, l128}, {m.Annotations, iconLabel64, a64}, {m.Annotations, iconLabel128, a128}} {
			if v.val.Valid {
				v.dst[v.key] = v.val.String
			}
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: manifests without icons: %w", err)
	}
	return out, nil
}
