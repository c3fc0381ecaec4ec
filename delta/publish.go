package delta

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/meta"
)

// emptyConfigDigest is the digest of emptyConfig.
var emptyConfigDigest = digest.FromBytes(emptyConfig)

// Publish brings repo's delta manifests and _deltaindex in line with its
// ready pairs: one delta manifest per target with a layer per source,
// recorded live before it is stored; delta manifests no longer wanted are
// retired (deleted later by the cycle); _deltaindex lists the live ones,
// or is deleted when there are none. It is idempotent, and writes nothing
// when everything is in line already.
func (m *Manager) Publish(ctx context.Context, repo string) error {
	m.publishMu.Lock()
	defer m.publishMu.Unlock()
	pairs, err := m.store.DeltaPairs(ctx, repo)
	if err != nil {
		return err
	}
	byTarget := make(map[digest.Digest][]meta.DeltaPair)
	for _, p := range pairs {
		if p.State == meta.DeltaReady {
			byTarget[p.Target] = append(byTarget[p.Target], p)
		}
	}
	recorded, err := m.store.DeltaManifests(ctx, repo)
	if err != nil {
		return err
	}
	cur, err := m.store.ResolveTag(ctx, repo, Tag)
	if errors.Is(err, meta.ErrTagNotFound) || errors.Is(err, meta.ErrRepoNotFound) {
		cur, err = "", nil
	}
	if err != nil {
		return fmt.Errorf("resolve %s:%s: %w", repo, Tag, err)
	}
	if cur != "" {
		// A _deltaindex Berth did not make (pushed, or mirrored from
		// another registry) is the repository owner's: never replaced or
		// deleted, and no deltas are published beside it.
		ours, err := m.ownIndex(ctx, repo, cur, recorded)
		if err != nil {
			return err
		}
		if !ours {
			m.log.Warn("a _deltaindex Berth did not make is left alone; no deltas are published in this repository", "repo", repo, "digest", cur)
			return nil
		}
	}
	wasLive := make(map[digest.Digest]digest.Digest)
	for _, dm := range recorded {
		if dm.Retired.IsZero() {
			wasLive[dm.Target] = dm.Digest
		}
	}
	var (
		built   []*meta.Manifest // every live delta manifest, by target
		toStore []*meta.Manifest // those not stored yet
	)
	live := make(map[digest.Digest]digest.Digest, len(byTarget))
	configReady := false
	for _, target := range slices.Sorted(maps.Keys(byTarget)) {
		ps := byTarget[target]
		dm, err := deltaManifest(repo, target, ps)
		if err != nil {
			return err
		}
		_, err = m.store.GetManifest(ctx, repo, dm.Digest)
		switch {
		case err == nil: // stored already
		case errors.Is(err, meta.ErrManifestNotFound), errors.Is(err, meta.ErrRepoNotFound):
			if !configReady {
				if err := m.ensureConfig(ctx, repo); err != nil {
					return err
				}
				configReady = true
			}
			// Relinking renews each link (its age restarts, so gc
			// leaves it until the manifest references it) and tells
			// whether the bytes are still there.
			usable := make([]meta.DeltaPair, 0, len(ps))
			for _, p := range ps {
				if err := m.relink(ctx, repo, p.Blob, p.Size); err != nil {
					m.log.Warn("delta blob unusable; left out and made again", "repo", repo, "target", target, "source", p.Source, "blob", p.Blob, "err", err)
					if errors.Is(err, blob.ErrNotFound) {
						if err := m.store.RequeueDelta(ctx, p.DeltaKey, "its blob was gone when published; made again"); err != nil {
							return err
						}
						m.Signal()
					}
					continue
				}
				usable = append(usable, p)
			}
			if len(usable) == 0 {
				continue
			}
			if len(usable) < len(ps) {
				if dm, err = deltaManifest(repo, target, usable); err != nil {
					return err
				}
			}
			toStore = append(toStore, dm)
		default:
			return fmt.Errorf("delta manifest %s@%s: %w", repo, dm.Digest, err)
		}
		built = append(built, dm)
		live[target] = dm.Digest
	}
	// Record first, store second: a crash in between leaves a record of a
	// manifest that may not exist (deleted as not found when retired),
	// never a stored manifest nothing records.
	if !maps.Equal(live, wasLive) {
		if err := m.store.SetLiveDeltaManifests(ctx, repo, live, m.now()); err != nil {
			return err
		}
	}
	for _, dm := range toStore {
		if err := m.store.PutManifest(ctx, dm); err != nil {
			return fmt.Errorf("store delta manifest %s@%s: %w", repo, dm.Digest, err)
		}
	}
	if len(built) == 0 {
		if cur != "" {
			if err := m.store.DeleteManifest(ctx, repo, cur); err != nil && !errors.Is(err, meta.ErrManifestNotFound) {
				return fmt.Errorf("delete %s:%s: %w", repo, Tag, err)
			}
			m.log.Info("delta index removed", "repo", repo)
		}
		return nil
	}
	idx, err := deltaIndex(repo, built)
	if err != nil {
		return err
	}
	if idx.Digest == cur {
		return nil
	}
	if err := m.store.PutManifest(ctx, idx, Tag); err != nil {
		return fmt.Errorf("store %s:%s: %w", repo, Tag, err)
	}
	if cur != "" {
		// The previous index, untagged now, would keep the delta
		// manifests it lists (gc keeps an index's children).
		if err := m.store.DeleteManifest(ctx, repo, cur); err != nil && !errors.Is(err, meta.ErrManifestNotFound) {
			return fmt.Errorf("delete the previous %s:%s: %w", repo, Tag, err)
		}
	}
	m.log.Info("delta index published", "repo", repo, "digest", idx.Digest, "targets", len(built))
	return nil
}

// PublishAll publishes every repository that has delta records, so
// changes made by another process (berth deltas drop or rebuild) take
// effect.
func (m *Manager) PublishAll(ctx context.Context) error {
	repos, err := m.store.DeltaRepositories(ctx)
	if err != nil {
		return err
	}
	return m.publishEach(ctx, repos)
}

// publishEach publishes each of repos; one's failure does not stop the
// others.
func (m *Manager) publishEach(ctx context.Context, repos []string) error {
	var errs []error
	for _, repo := range repos {
		if err := m.Publish(ctx, repo); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ownIndex reports whether the manifest d (what _deltaindex points at)
// is a delta index Berth published: an index each of whose children is a
// delta manifest Berth recorded for repo.
func (m *Manager) ownIndex(ctx context.Context, repo string, d digest.Digest, recorded []meta.DeltaManifest) (bool, error) {
	mf, err := m.store.GetManifest(ctx, repo, d)
	if errors.Is(err, meta.ErrManifestNotFound) {
		return true, nil // gone meanwhile: nothing to protect
	}
	if err != nil {
		return false, fmt.Errorf("%s:%s: %w", repo, Tag, err)
	}
	if mf.MediaType != v1.MediaTypeImageIndex {
		return false, nil
	}
	ours := make(map[digest.Digest]bool, len(recorded))
	for _, dm := range recorded {
		ours[dm.Digest] = true
	}
	children := 0
	for _, r := range mf.Refs {
		if r.Kind != meta.RefManifest {
			return false, nil
		}
		if !ours[r.Digest] {
			// A child neither recorded nor stored: one of Berth's,
			// retired and deleted while an interrupted publication left
			// the index pointing at it.
			if _, err := m.store.GetManifest(ctx, repo, r.Digest); !errors.Is(err, meta.ErrManifestNotFound) {
				return false, err
			}
		}
		children++
	}
	return children > 0, nil
}

// relink links a delta blob into repo again (renewing the link) if its
// bytes are still in the blob store.
func (m *Manager) relink(ctx context.Context, repo string, d digest.Digest, size int64) error {
	info, err := m.blobs.Stat(ctx, d)
	if err != nil {
		return err
	}
	if info.Size != size {
		return fmt.Errorf("blob %s holds %d bytes, not %d", d, info.Size, size)
	}
	return m.store.LinkBlob(ctx, repo, d, size)
}

// ensureConfig makes the empty config blob exist and be linked in repo.
func (m *Manager) ensureConfig(ctx context.Context, repo string) error {
	if err := m.relink(ctx, repo, emptyConfigDigest, int64(len(emptyConfig))); err == nil {
		return nil
	} else if !errors.Is(err, blob.ErrNotFound) {
		return fmt.Errorf("delta config blob: %w", err)
	}
	return m.storeBlob(ctx, repo, emptyConfigDigest, int64(len(emptyConfig)), bytes.NewReader(emptyConfig))
}

// deltaManifest builds the delta manifest of target from its ready pairs.
func deltaManifest(repo string, target digest.Digest, ps []meta.DeltaPair) (*meta.Manifest, error) {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b meta.DeltaPair) int { return cmp.Compare(a.Source, b.Source) })
	doc := v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config: v1.Descriptor{
			MediaType: MediaTypeConfig,
			Digest:    emptyConfigDigest,
			Size:      int64(len(emptyConfig)),
		},
		Annotations: map[string]string{AnnotationTarget: target.String()},
	}
	m := &meta.Manifest{
		Repo:         repo,
		MediaType:    v1.MediaTypeImageManifest,
		ArtifactType: MediaTypeConfig,
		Config:       emptyConfigDigest,
		Annotations:  doc.Annotations,
		Refs:         []meta.Ref{{Digest: emptyConfigDigest, Kind: meta.RefBlob, MediaType: MediaTypeConfig, Size: int64(len(emptyConfig))}},
		TotalSize:    int64(len(emptyConfig)),
	}
	seen := make(map[[2]digest.Digest]bool)
	for _, p := range ps {
		if seen[[2]digest.Digest{p.From, p.To}] {
			continue // two sources with one layer: one delta serves both
		}
		seen[[2]digest.Digest{p.From, p.To}] = true
		doc.Layers = append(doc.Layers, v1.Descriptor{
			MediaType:   MediaTypeTarDiff,
			Digest:      p.Blob,
			Size:        p.Size,
			Annotations: map[string]string{AnnotationFrom: p.From.String(), AnnotationTo: p.To.String()},
		})
		m.Refs = append(m.Refs, meta.Ref{Digest: p.Blob, Kind: meta.RefBlob, MediaType: MediaTypeTarDiff, Size: p.Size})
		m.TotalSize += p.Size
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("delta manifest: %w", err)
	}
	m.Content, m.Digest = body, digest.FromBytes(body)
	m.TotalSize += int64(len(body))
	return m, nil
}

// deltaIndex builds the _deltaindex index listing the delta manifests.
func deltaIndex(repo string, dms []*meta.Manifest) (*meta.Manifest, error) {
	doc := v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
	}
	m := &meta.Manifest{Repo: repo, MediaType: v1.MediaTypeImageIndex}
	for _, dm := range dms {
		doc.Manifests = append(doc.Manifests, v1.Descriptor{
			MediaType:   v1.MediaTypeImageManifest,
			Digest:      dm.Digest,
			Size:        int64(len(dm.Content)),
			Annotations: map[string]string{AnnotationTarget: dm.Annotations[AnnotationTarget]},
		})
		m.Refs = append(m.Refs, meta.Ref{Digest: dm.Digest, Kind: meta.RefManifest, MediaType: v1.MediaTypeImageManifest, Size: int64(len(dm.Content))})
		m.TotalSize += dm.TotalSize
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("delta index: %w", err)
	}
	m.Content, m.Digest = body, digest.FromBytes(body)
	m.TotalSize += int64(len(body))
	return m, nil
}
