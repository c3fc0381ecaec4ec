package fsck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// The Flatpak delta index (package delta): what the flatpak client follows
// must be there, because it has no fallback when a delta it was offered
// cannot be fetched or applied.

// Kinds of delta problems.
const (
	// DeltaDangling: _deltaindex lists a delta manifest that is not
	// stored (a client offered it fails its update).
	DeltaDangling Kind = "delta-dangling"
	// DeltaUnverified: a delta layer that no verified delta of Berth's
	// records (not made, or not verified, by Berth).
	DeltaUnverified Kind = "delta-unverified"
	// DeltaStale: an entry whose target image is gone; the delta worker
	// drops it at its next cycle (pending collection).
	DeltaStale Kind = "delta-stale"
)

// DeltaMeta is what the delta check reads; a Meta that implements it is
// checked.
type DeltaMeta interface {
	DeltaRepositories(ctx context.Context) ([]string, error)
	DeltaPairs(ctx context.Context, repo string) ([]meta.DeltaPair, error)
	ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error)
}

// deltaIndexTag is flatpak.DeltaIndexTag (fsck does not import the
// Flatpak remote).
const deltaIndexTag = "_deltaindex"

type deltaIndexDoc struct {
	Manifests []struct {
		Digest      digest.Digest     `json:"digest"`
		Annotations map[string]string `json:"annotations"`
	} `json:"manifests"`
}

type deltaManifestDoc struct {
	Annotations map[string]string `json:"annotations"`
	Layers      []struct {
		Digest      digest.Digest     `json:"digest"`
		Annotations map[string]string `json:"annotations"`
	} `json:"layers"`
}

// deltas checks every repository's _deltaindex: each delta manifest it
// lists is stored, leads to an image that exists, and each of its layers
// is a delta Berth made and verified (a ready pair with that blob, from
// and to). Missing blobs are the refs check's.
func (x *run) deltas(ctx context.Context) error {
	dm, ok := x.c.meta.(DeltaMeta)
	if !ok {
		return nil
	}
	repos, err := dm.DeltaRepositories(ctx)
	if err != nil {
		return err
	}
	for _, repo := range repos {
		if err := x.deltaRepo(ctx, dm, repo); err != nil {
			return err
		}
	}
	return nil
}

func (x *run) deltaRepo(ctx context.Context, dm DeltaMeta, repo string) error {
	idx, err := dm.ResolveTag(ctx, repo, deltaIndexTag)
	if errors.Is(err, meta.ErrTagNotFound) || errors.Is(err, meta.ErrRepoNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	im, err := x.c.meta.GetManifest(ctx, repo, idx)
	if errors.Is(err, meta.ErrManifestNotFound) {
		return nil // replaced meanwhile
	}
	if err != nil {
		return err
	}
	var doc deltaIndexDoc
	if err := json.Unmarshal(im.Content, &doc); err != nil {
		x.add(Problem{Kind: DeltaDangling, Digest: idx, Repo: repo, Detail: "the delta index is not an index: " + err.Error()})
		return nil
	}
	pairs, err := dm.DeltaPairs(ctx, repo)
	if err != nil {
		return err
	}
	verified := make(map[[3]digest.Digest]bool)
	for _, p := range pairs {
		if p.State == meta.DeltaReady {
			verified[[3]digest.Digest{p.Blob, p.From, p.To}] = true
		}
	}
	for _, e := range doc.Manifests {
		target := digest.Digest(e.Annotations["io.github.containers.delta.target"])
		m, err := x.c.meta.GetManifest(ctx, repo, e.Digest)
		if errors.Is(err, meta.ErrManifestNotFound) {
			x.add(Problem{Kind: DeltaDangling, Digest: e.Digest, Repo: repo, Manifest: idx,
				Detail: fmt.Sprintf("the delta index lists a delta manifest (for %s) that is not stored; clients offered it fail to update", target)})
			continue
		}
		if err != nil {
			return err
		}
		if _, err := x.c.meta.GetManifest(ctx, repo, target); errors.Is(err, meta.ErrManifestNotFound) {
			x.add(Problem{Kind: DeltaStale, Digest: e.Digest, Repo: repo, Manifest: idx, Pending: true,
				Detail: fmt.Sprintf("its target %s is gone; the delta worker drops it at its next cycle", target)})
			continue
		} else if err != nil {
			return err
		}
		var md deltaManifestDoc
		if err := json.Unmarshal(m.Content, &md); err != nil {
			x.add(Problem{Kind: DeltaUnverified, Digest: e.Digest, Repo: repo, Detail: "not a manifest: " + err.Error()})
			continue
		}
		for _, l := range md.Layers {
			k := [3]digest.Digest{l.Digest,
				digest.Digest(l.Annotations["io.github.containers.delta.from"]),
				digest.Digest(l.Annotations["io.github.containers.delta.to"])}
			if !verified[k] {
				x.add(Problem{Kind: DeltaUnverified, Digest: l.Digest, Repo: repo, Manifest: e.Digest,
					Detail: "a delta layer no verified delta records (berth deltas rebuild " + repo + " makes them again)"})
			}
		}
	}
	return nil
}
