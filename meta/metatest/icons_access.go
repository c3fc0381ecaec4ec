package metatest

import (
	"context"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// IconAccessStore is what the Flatpak remote needs to serve an icon only
// to a requester who may pull a repository showing it (V14).
//
// IconRepositories calls fn with each repository holding a manifest
// (tagged or not) that shows the icon d, in byte order and once each,
// until fn returns false; an unknown icon has none. An icon stops being
// listed under a repository when the last manifest there showing it is
// deleted or shows another icon instead.
type IconAccessStore interface {
	IndexStore
	IconRepositories(ctx context.Context, d digest.Digest, fn func(repo string) bool) error
}

// RunIconAccess runs the IconAccessStore contract on a new, empty store
// from newStore.
func RunIconAccess(t *testing.T, newStore func(t *testing.T) IconAccessStore) {
	t.Helper()
	t.Run("IconRepositories", func(t *testing.T) { testIconRepositories(t, newStore(t)) })
}

func iconRepos(t *testing.T, s IconAccessStore, d digest.Digest, stopAfter int) []string {
	t.Helper()
	out := []string{}
	err := s.IconRepositories(t.Context(), d, func(repo string) bool {
		out = append(out, repo)
		return stopAfter <= 0 || len(out) < stopAfter
	})
	noErr(t, err, "IconRepositories")
	return out
}

func testIconRepositories(t *testing.T, s IconAccessStore) {
	ctx := t.Context()
	shared, own := []byte("shared icon"), []byte("own icon")
	dShared, dOwn := pngDigest(shared), pngDigest(own)
	if got := iconRepos(t, s, dShared, 0); len(got) != 0 {
		t.Errorf("unknown icon: %v", got)
	}
	b1, b2 := image("b/app", "one", ""), image("b/app", "two", "")
	a, c := image("a/app", "a", ""), image("c/secret", "c", "")
	put(t, s, b1, "1")
	put(t, s, b2) // untagged: still shows its icon
	put(t, s, a, "latest")
	put(t, s, c, "latest")
	key := func(m *meta.Manifest) meta.ManifestKey { return meta.ManifestKey{Repo: m.Repo, Digest: m.Digest} }
	noErr(t, s.PutIcon(ctx, key(b1), 64, dShared, shared), "PutIcon")
	noErr(t, s.PutIcon(ctx, key(b2), 128, dShared, shared), "PutIcon")
	noErr(t, s.PutIcon(ctx, key(c), 64, dShared, shared), "PutIcon")
	noErr(t, s.PutIcon(ctx, key(a), 64, dShared, shared), "PutIcon")
	noErr(t, s.PutIcon(ctx, key(c), 128, dOwn, own), "PutIcon")

	if got, want := iconRepos(t, s, dShared, 0), []string{"a/app", "b/app", "c/secret"}; !slices.Equal(got, want) {
		t.Errorf("shared icon: %v, want %v", got, want)
	}
	if got, want := iconRepos(t, s, dOwn, 0), []string{"c/secret"}; !slices.Equal(got, want) {
		t.Errorf("own icon: %v, want %v", got, want)
	}
	if got, want := iconRepos(t, s, dShared, 1), []string{"a/app"}; !slices.Equal(got, want) {
		t.Errorf("stopping after one: %v, want %v", got, want)
	}
	// The icon leaves a repository with its last manifest there.
	noErr(t, s.DeleteManifest(ctx, "b/app", b1.Digest), "DeleteManifest")
	if got, want := iconRepos(t, s, dShared, 0), []string{"a/app", "b/app", "c/secret"}; !slices.Equal(got, want) {
		t.Errorf("after deleting one of two: %v, want %v", got, want)
	}
	noErr(t, s.DeleteManifest(ctx, "b/app", b2.Digest), "DeleteManifest")
	noErr(t, s.PutIcon(ctx, key(a), 64, dOwn, own), "PutIcon replace")
	if got, want := iconRepos(t, s, dShared, 0), []string{"c/secret"}; !slices.Equal(got, want) {
		t.Errorf("after delete and replace: %v, want %v", got, want)
	}
	if got, want := iconRepos(t, s, dOwn, 0), []string{"a/app", "c/secret"}; !slices.Equal(got, want) {
		t.Errorf("replacing icon: %v, want %v", got, want)
	}
}
