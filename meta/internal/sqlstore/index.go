package sqlstore

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

// The media types the index takes for images and for indexes of images
// (package oci's, which the store may not import).
const (
	mediaTypeImageManifest      = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeImageIndex         = "application/vnd.oci.image.index.v1+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// The AppStream icon labels (package flatpak's LabelIcon64 and
// LabelIcon128).
const (
	iconLabel64  = "org.freedesktop.appstream.icon-64"
	iconLabel128 = "org.freedesktop.appstream.icon-128"
)

// generationQuery is the query of a scope's counter: index_generation
// (migration 0003) or flatpak_generation (0010).
func (s *Store) generationQuery(scope meta.IndexScope) string {
	if scope == meta.ScopeFlatpak {
		return s.q.FlatpakGeneration
	}
	return s.q.IndexGeneration
}

// IndexGeneration returns the index generation of scope: a counter that
// increases with every committed change to manifests, tags or icons
// (push, tag move, delete, garbage collection) that can alter answers of
// that scope, and only then.
func (s *Store) IndexGeneration(ctx context.Context, scope meta.IndexScope) (int64, error) {
	var g int64
	if err := s.r.QueryRow(ctx, s.generationQuery(scope)).Scan(&g); err != nil {
		return 0, fmt.Errorf("%s: index generation: %w", s.name, err)
	}
	return g, nil
}

// IndexImages implements the store side of the Flatpak registry index
// (see metatest.IndexStore for the contract). It reads one snapshot, the
// icons each image shows included, and returns the generation of that
// snapshot.
func (s *Store) IndexImages(ctx context.Context, filter meta.IndexFilter,
	fn func(img, list *meta.Manifest, tags []string, icons map[int]digest.Digest) error) (int64, error) {
	f := s.compileIndexFilter(filter)
	tx, err := s.snapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: index: %w", s.name, err)
	}
	defer tx.Rollback()
	var gen int64
	if err := tx.QueryRow(ctx, s.generationQuery(filter.Scope())).Scan(&gen); err != nil {
		return 0, fmt.Errorf("%s: index generation: %w", s.name, err)
	}
	if f.empty {
		return gen, nil
	}
	if err := s.indexImages(ctx, tx, f, fn); err != nil {
		return 0, err
	}
	if err := s.indexListImages(ctx, tx, f, fn); err != nil {
		return 0, err
	}
	return gen, nil
}

func (s *Store) indexImages(ctx context.Context, tx *Tx, f *indexFilter, fn func(img, list *meta.Manifest, tags []string, icons map[int]digest.Digest) error) error {
	q, args := f.sql(s.q.IndexImages, "m", mediaTypeImageManifest, mediaTypeDockerManifest)
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: index images: %w", s.name, err)
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
			return fmt.Errorf("%s: index images: %w", s.name, err)
		}
		if err := s.fillIndexManifest(&m, dgst, ann, lb, created, pushed); err != nil {
			return err
		}
		var tags []string
		if err := json.Unmarshal([]byte(tagsRaw), &tags); err != nil {
			return fmt.Errorf("%s: index images: tags of %s@%s: %w", s.name, m.Repo, dgst, err)
		}
		icons, err := decodeIcons(iconRaw)
		if err != nil {
			return fmt.Errorf("%s: index images: icons of %s@%s: %w", s.name, m.Repo, dgst, err)
		}
		if err := fn(&m, nil, tags, icons); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: index images: %w", s.name, err)
	}
	return nil
}

func (s *Store) indexListImages(ctx context.Context, tx *Tx, f *indexFilter, fn func(img, list *meta.Manifest, tags []string, icons map[int]digest.Digest) error) error {
	q, args := f.sql(s.q.IndexListImages, "c",
		mediaTypeImageManifest, mediaTypeDockerManifest, mediaTypeImageIndex, mediaTypeDockerManifestList)
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: index lists: %w", s.name, err)
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
			return fmt.Errorf("%s: index lists: %w", s.name, err)
		}
		if list == nil || list.Repo != l.Repo || string(list.Digest) != ldgst {
			l.Digest = digest.Digest(ldgst)
			var err error
			if l.Annotations, err = decodeMap(lann); err != nil {
				return fmt.Errorf("%s: index lists: annotations of %s@%s: %w", s.name, l.Repo, ldgst, err)
			}
			listTags = nil
			if err := json.Unmarshal([]byte(tagsRaw), &listTags); err != nil {
				return fmt.Errorf("%s: index lists: tags of %s@%s: %w", s.name, l.Repo, ldgst, err)
			}
			list = &l
		}
		m.Repo = list.Repo
		if err := s.fillIndexManifest(&m, dgst, ann, lb, created, pushed); err != nil {
			return err
		}
		icons, err := decodeIcons(iconRaw)
		if err != nil {
			return fmt.Errorf("%s: index lists: icons of %s@%s: %w", s.name, m.Repo, dgst, err)
		}
		if err := fn(&m, list, listTags, icons); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: index lists: %w", s.name, err)
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

func (s *Store) fillIndexManifest(m *meta.Manifest, dgst string, ann, lb sql.NullString, created sql.NullInt64, pushed int64) error {
	m.Digest = digest.Digest(dgst)
	m.Created, m.Pushed = fromNullNanos(created), fromNanos(pushed)
	var err error
	if m.Annotations, err = decodeMap(ann); err != nil {
		return fmt.Errorf("%s: index: annotations of %s@%s: %w", s.name, m.Repo, dgst, err)
	}
	if m.Labels, err = decodeMap(lb); err != nil {
		return fmt.Errorf("%s: index: labels of %s@%s: %w", s.name, m.Repo, dgst, err)
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
	// mapCond is the dialect's JSON condition (Dialect.MapCond).
	mapCond func(b *strings.Builder, column string, keyArg int, exists bool, in func(expr string))
}

// mapCond is one label or annotation condition of the filter.
type mapCond struct {
	column string // "labels" or "annotations"
	key    string
	exists bool
	values []string
}

// compileIndexFilter maps the typed filter onto the columns.
func (s *Store) compileIndexFilter(filter meta.IndexFilter) *indexFilter {
	f := &indexFilter{mapCond: s.q.MapCond, repos: filter.Repositories, tags: filter.Tags, oses: filter.OS, archs: filter.Architectures, empty: filter.None}
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
// image alias, %[2]s on the tag t. The template's first arguments are
// mediaTypes.
func (f *indexFilter) sql(template, alias string, mediaTypes ...any) (string, []any) {
	var (
		args = mediaTypes
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
		f.mapCond(&cond, alias+"."+c.column, len(args), c.exists, func(expr string) { in(&cond, expr, c.values) })
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
	err := s.write(ctx, func(tx *Tx) error {
		var one int
		if err := tx.QueryRow(ctx, s.q.IconManifestExists, key.Repo, string(key.Digest)).Scan(&one); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.InsertIcon, string(d), png, s.nowNanos()); err != nil {
			return err
		}
		t := s.nowNanos()
		if _, err := tx.Exec(ctx, s.q.PutManifestIcon, key.Repo, string(key.Digest), size, string(d)); err != nil {
			return err
		}
		return s.insertEvent(ctx, tx, meta.EventIconUpdate, key.Repo,
			meta.IconUpdatePayload{Digest: key.Digest, Size: size, Icon: d}, t)
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("icon of %s@%s: %w", key.Repo, key.Digest, meta.ErrManifestNotFound)
	case err != nil:
		return fmt.Errorf("%s: put icon %s of %s@%s: %w", s.name, d, key.Repo, key.Digest, err)
	}
	return nil
}

// Icon returns the PNG bytes of the icon whose digest is d; ok is false
// if no manifest shows such an icon.
func (s *Store) Icon(ctx context.Context, d digest.Digest) (png []byte, ok bool, err error) {
	err = s.r.QueryRow(ctx, s.q.Icon, string(d)).Scan(&png)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("%s: icon %s: %w", s.name, d, err)
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
		return nil, fmt.Errorf("%s: manifest icons: %w", s.name, err)
	}
	rows, err := s.r.Query(ctx, s.q.ManifestIcons, string(arg))
	if err != nil {
		return nil, fmt.Errorf("%s: manifest icons: %w", s.name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			key     meta.ManifestKey
			d, icon string
			size    int
		)
		if err := rows.Scan(&key.Repo, &d, &size, &icon); err != nil {
			return nil, fmt.Errorf("%s: manifest icons: %w", s.name, err)
		}
		key.Digest = digest.Digest(d)
		if out[key] == nil {
			out[key] = map[int]digest.Digest{}
		}
		out[key][size] = digest.Digest(icon)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: manifest icons: %w", s.name, err)
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
	rows, err := s.r.Query(ctx, s.q.ManifestsWithoutIcons, after.Repo, string(after.Digest), limit(n),
		s.q.Label(iconLabel64), s.q.Label(iconLabel128))
	if err != nil {
		return nil, fmt.Errorf("%s: manifests without icons: %w", s.name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			m                    meta.Manifest
			d                    string
			l64, l128, a64, a128 sql.NullString
		)
		if err := rows.Scan(&m.Repo, &d, &l64, &l128, &a64, &a128); err != nil {
			return nil, fmt.Errorf("%s: manifests without icons: %w", s.name, err)
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
		return nil, fmt.Errorf("%s: manifests without icons: %w", s.name, err)
	}
	return out, nil
}
