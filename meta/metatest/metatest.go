package metatest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// Run runs the contract suite, one subtest per behaviour, each on a store
// returned by newStore. newStore must return a new, empty store and arrange
// for it to be closed (t.Cleanup); the Close subtest closes its store itself
// first, so Close must tolerate a second call.
func Run(t *testing.T, newStore func(t *testing.T) meta.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s meta.Store)
	}{
		{"LinkBlob", testLinkBlob},
		{"UnlinkBlob", testUnlinkBlob},
		{"BlobKnown", testBlobKnown},
		{"LinkingRepositories", testLinkingRepositories},
		{"PutManifest/RoundTrip", testPutManifestRoundTrip},
		{"PutManifest/Minimal", testPutManifestMinimal},
		{"PutManifest/Index", testPutManifestIndex},
		{"PutManifest/BlobUnknown", testPutManifestBlobUnknown},
		{"PutManifest/BlobUnknownNewRepo", testPutManifestBlobUnknownNewRepo},
		{"PutManifest/RePut", testPutManifestRePut},
		{"PutManifest/TwoRepos", testPutManifestTwoRepos},
		{"PutManifest/TagRepointed", testTagRepointed},
		{"PutManifest/KeepTags", testKeepTags},
		{"GetManifest/NotFound", testGetManifestNotFound},
		{"RefreshLink", testRefreshLink},
		{"ManifestSizes", testManifestSizes},
		{"ResolveTag", testResolveTag},
		{"ManifestBody", testManifestBody},
		{"ManifestBody/TagRace", testTagBodyRace},
		{"DeleteManifest", testDeleteManifest},
		{"DeleteTag", testDeleteTag},
		{"Tags/Pagination", testTagsPagination},
		{"Tags/RepoNotFound", testTagsRepoNotFound},
		{"Tags/Empty", testTagsEmpty},
		{"Repositories/Pagination", testRepositoriesPagination},
		{"Repositories/Empty", testRepositoriesEmpty},
		{"Referrers", testReferrers},
		{"Referrers/Empty", testReferrersEmpty},
		{"Referrers/Each", testEachReferrer},
		{"Uploads/CreateGet", testUploadCreateGet},
		{"Uploads/CreateDuplicate", testUploadCreateDuplicate},
		{"Uploads/Update", testUploadUpdate},
		{"Uploads/UpdateRace", testUploadUpdateRace},
		{"Uploads/Delete", testUploadDelete},
		{"Uploads/Finish", testUploadFinish},
		{"Uploads/Client", testUploadClient},
		{"Uploads/Capped", testUploadCapped},
		{"Uploads/CappedConcurrent", testUploadCappedConcurrent},
		{"Concurrent/PutSameTag", testConcurrentPutSameTag},
		{"Concurrent/Writers", testConcurrentWriters},
		{"GC/SweepManifest", testGCSweepManifest},
		{"GC/SweepLink", testGCSweepLink},
		{"GC/ClaimBlob", testGCClaimBlob},
		{"GC/Uploads", testGCUploads},
		{"GC/Listings", testGCListings},
		{"GC/ConcurrentSweep", testGCConcurrentSweep},
		{"GC/Batches", testGCBatches},
		{"GC/ConcurrentBatches", testGCConcurrentBatches},
		{"GC/ClaimExclusive", testGCClaimExclusive},
		{"GC/ConcurrentCollectors", testGCConcurrentCollectors},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// blob returns the digest and size of a blob whose bytes are s.
func blob(s string) (digest.Digest, int64) {
	return digest.FromString(s), int64(len(s))
}

// link links the blobs whose bytes are names into repo and returns their
// digests.
func link(t *testing.T, s meta.Store, repo string, names ...string) []digest.Digest {
	t.Helper()
	ds := make([]digest.Digest, 0, len(names))
	for _, n := range names {
		d, size := blob(n)
		if err := s.LinkBlob(t.Context(), repo, d, size); err != nil {
			t.Fatalf("LinkBlob(%s, %s): %v", repo, d, err)
		}
		ds = append(ds, d)
	}
	return ds
}

// image builds an image manifest in repo whose bytes are derived from name,
// referencing config and layers as RefBlob.
func image(repo, name string, config digest.Digest, layers ...digest.Digest) *meta.Manifest {
	content := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","name":%q}`, name)
	m := &meta.Manifest{
		Repo:         repo,
		Digest:       digest.FromBytes(content),
		MediaType:    "application/vnd.oci.image.manifest.v1+json",
		Content:      content,
		ArtifactType: "application/vnd.oci.image.config.v1+json",
		Config:       config,
		OS:           "linux",
		Architecture: "amd64",
		TotalSize:    int64(len(content)),
	}
	if config != "" {
		m.Refs = append(m.Refs, meta.Ref{Digest: config, Kind: meta.RefBlob, MediaType: "application/vnd.oci.image.config.v1+json", Size: 10})
	}
	for _, l := range layers {
		m.Refs = append(m.Refs, meta.Ref{Digest: l, Kind: meta.RefBlob, MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Size: 20})
	}
	return m
}

func put(t *testing.T, s meta.Store, m *meta.Manifest, tags ...string) {
	t.Helper()
	if err := s.PutManifest(t.Context(), m, tags...); err != nil {
		t.Fatalf("PutManifest(%s@%s, %q): %v", m.Repo, m.Digest, tags, err)
	}
}

func get(t *testing.T, s meta.Store, repo string, d digest.Digest) *meta.Manifest {
	t.Helper()
	m, err := s.GetManifest(t.Context(), repo, d)
	if err != nil {
		t.Fatalf("GetManifest(%s, %s): %v", repo, d, err)
	}
	return m
}

func resolve(t *testing.T, s meta.Store, repo, tag string) digest.Digest {
	t.Helper()
	d, err := s.ResolveTag(t.Context(), repo, tag)
	if err != nil {
		t.Fatalf("ResolveTag(%s, %s): %v", repo, tag, err)
	}
	return d
}

func tags(t *testing.T, s meta.Store, repo string) []string {
	t.Helper()
	ts, err := s.Tags(t.Context(), repo, "", -1)
	if err != nil {
		t.Fatalf("Tags(%s): %v", repo, err)
	}
	return ts
}

func repositories(t *testing.T, s meta.Store) []string {
	t.Helper()
	rs, err := s.Repositories(t.Context(), "", -1)
	if err != nil {
		t.Fatalf("Repositories: %v", err)
	}
	return rs
}

func noErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantErr checks that err matches target and carries context beyond it.
func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
	if err.Error() == target.Error() {
		t.Errorf("%s: error %q is not wrapped with context", what, err)
	}
}

// checkManifest compares every stored fact except Pushed.
func checkManifest(t *testing.T, got, want *meta.Manifest) {
	t.Helper()
	if got.Repo != want.Repo {
		t.Errorf("Repo = %q, want %q", got.Repo, want.Repo)
	}
	if got.Digest != want.Digest {
		t.Errorf("Digest = %q, want %q", got.Digest, want.Digest)
	}
	if got.MediaType != want.MediaType {
		t.Errorf("MediaType = %q, want %q", got.MediaType, want.MediaType)
	}
	if !bytes.Equal(got.Content, want.Content) {
		t.Errorf("Content = %q, want %q", got.Content, want.Content)
	}
	if got.ArtifactType != want.ArtifactType {
		t.Errorf("ArtifactType = %q, want %q", got.ArtifactType, want.ArtifactType)
	}
	if got.Subject != want.Subject {
		t.Errorf("Subject = %q, want %q", got.Subject, want.Subject)
	}
	if got.Config != want.Config {
		t.Errorf("Config = %q, want %q", got.Config, want.Config)
	}
	if !maps.Equal(got.Annotations, want.Annotations) {
		t.Errorf("Annotations = %v, want %v", got.Annotations, want.Annotations)
	}
	if !maps.Equal(got.Labels, want.Labels) {
		t.Errorf("Labels = %v, want %v", got.Labels, want.Labels)
	}
	if got.OS != want.OS || got.Architecture != want.Architecture || got.Variant != want.Variant {
		t.Errorf("platform = %s/%s/%s, want %s/%s/%s", got.OS, got.Architecture, got.Variant, want.OS, want.Architecture, want.Variant)
	}
	if !got.Created.Equal(want.Created) || got.Created.IsZero() != want.Created.IsZero() {
		t.Errorf("Created = %v, want %v", got.Created, want.Created)
	}
	if got.TotalSize != want.TotalSize {
		t.Errorf("TotalSize = %d, want %d", got.TotalSize, want.TotalSize)
	}
	if !slices.Equal(got.Refs, want.Refs) {
		t.Errorf("Refs = %+v, want %+v", got.Refs, want.Refs)
	}
}

// checkTime checks that got lies within [before, after], with slack for
// backends whose clock or precision differs slightly from the test's.
func checkTime(t *testing.T, what string, got, before, after time.Time) {
	t.Helper()
	const slack = time.Second
	if got.Before(before.Add(-slack)) || got.After(after.Add(slack)) {
		t.Errorf("%s = %v, want within [%v, %v]", what, got, before, after)
	}
}

func checkStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if got == nil {
		t.Errorf("%s = nil, want a non-nil slice", what)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// untilClosed calls fn again and again until stop is closed or fn returns
// false: the loop of a goroutine racing the test's main one.
func untilClosed(stop <-chan struct{}, fn func() bool) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if !fn() {
			return
		}
	}
}
