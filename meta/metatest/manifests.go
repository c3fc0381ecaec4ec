package metatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

func testPutManifestRoundTrip(t *testing.T, s meta.Store) {
	ds := link(t, s, "lib/app", "config", "layer1", "layer2")
	subject := digest.FromString("subject")
	// Bytes that are not valid UTF-8, with a NUL and odd whitespace: stored
	// exactly as pushed.
	content := []byte("{\n  \"schemaVersion\": 2 ,\t\"x\":\"\xff\xfe\x00\"}\r\n")
	want := &meta.Manifest{
		Repo:         "lib/app",
		Digest:       digest.FromBytes(content),
		MediaType:    "application/vnd.oci.image.manifest.v1+json",
		Content:      content,
		ArtifactType: "application/vnd.example.sbom",
		Subject:      subject,
		Config:       ds[0],
		Annotations: map[string]string{
			"org.opencontainers.image.title": "app",
			"org.opencontainers.image.url":   "https://example.com/app?x=1&y=2",
			"unicode":                        "é ✓",
			"empty":                          "",
		},
		Labels:       map[string]string{"maintainer": "me", "quote": `"x"`},
		OS:           "linux",
		Architecture: "arm64",
		Variant:      "v8",
		Created:      time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600)),
		TotalSize:    12345,
		Refs: []meta.Ref{
			{Digest: ds[0], Kind: meta.RefBlob, MediaType: "application/vnd.oci.image.config.v1+json", Size: 6},
			{Digest: ds[1], Kind: meta.RefBlob, MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Size: 6},
			{Digest: ds[2], Kind: meta.RefBlob, MediaType: "application/vnd.oci.image.layer.v1.tar+zstd", Size: 6},
			// The same layer twice is legal and keeps its place.
			{Digest: ds[1], Kind: meta.RefBlob, MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Size: 6},
			{Digest: digest.FromString("foreign"), Kind: meta.RefExternal, MediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Size: 99},
		},
	}
	in := *want
	in.Refs = slices.Clone(want.Refs)

	before := time.Now()
	put(t, s, &in, "v1", "latest")
	after := time.Now()

	got := get(t, s, "lib/app", want.Digest)
	checkManifest(t, got, want)
	checkTime(t, "Pushed", got.Pushed, before, after)

	for _, tag := range []string{"v1", "latest"} {
		if d := resolve(t, s, "lib/app", tag); d != want.Digest {
			t.Errorf("ResolveTag(%s) = %s, want %s", tag, d, want.Digest)
		}
	}
	checkStrings(t, "Tags", tags(t, s, "lib/app"), []string{"latest", "v1"})

	// The returned manifest is the caller's to modify.
	got.Content[0] = 'X'
	got.Annotations["org.opencontainers.image.title"] = "changed"
	again := get(t, s, "lib/app", want.Digest)
	checkManifest(t, again, want)
}

func testPutManifestMinimal(t *testing.T, s meta.Store) {
	// No refs, no maps, no times, no tags: an empty-layer artifact with no
	// config is not valid OCI, but the store does not judge content.
	content := []byte(`{}`)
	want := &meta.Manifest{
		Repo:      "min",
		Digest:    digest.FromBytes(content),
		MediaType: "application/vnd.oci.image.manifest.v1+json",
		Content:   content,
		TotalSize: 2,
	}
	in := *want
	put(t, s, &in)
	got := get(t, s, "min", want.Digest)
	checkManifest(t, got, want)
	if got.Pushed.IsZero() {
		t.Error("Pushed is zero, want the time the store stored it")
	}
	// Empty maps in, nil-or-empty out.
	in2 := *want
	in2.Annotations, in2.Labels, in2.Refs = map[string]string{}, map[string]string{}, []meta.Ref{}
	put(t, s, &in2)
	checkManifest(t, get(t, s, "min", want.Digest), want)

	checkStrings(t, "Tags", tags(t, s, "min"), []string{})
	checkStrings(t, "Repositories", repositories(t, s), []string{"min"})
}

func testPutManifestIndex(t *testing.T, s meta.Store) {
	// An index's children (RefManifest) need not exist, and external refs
	// need not be linked.
	child1 := image("multi", "amd64", "")
	child2 := digest.FromString("absent child")
	content := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
	want := &meta.Manifest{
		Repo:        "multi",
		Digest:      digest.FromBytes(content),
		MediaType:   "application/vnd.oci.image.index.v1+json",
		Content:     content,
		Annotations: map[string]string{"org.opencontainers.image.ref.name": "1.0"},
		TotalSize:   int64(len(content)) + int64(len(child1.Content)),
		Refs: []meta.Ref{
			{Digest: child1.Digest, Kind: meta.RefManifest, MediaType: child1.MediaType, Size: int64(len(child1.Content)), Platform: "linux/amd64"},
			{Digest: child2, Kind: meta.RefManifest, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 500, Platform: "linux/arm64/v8"},
			{Digest: digest.FromString("ext"), Kind: meta.RefExternal, MediaType: "application/vnd.oci.image.layer.v1.tar", Size: 7},
		},
	}
	in := *want
	put(t, s, &in, "1.0")
	checkManifest(t, get(t, s, "multi", want.Digest), want)
	if d := resolve(t, s, "multi", "1.0"); d != want.Digest {
		t.Errorf("ResolveTag = %s, want %s", d, want.Digest)
	}
	// The child pushed after its index.
	put(t, s, child1)
	checkManifest(t, get(t, s, "multi", child1.Digest), child1)
}

func testPutManifestBlobUnknown(t *testing.T, s meta.Store) {
	ctx := t.Context()
	ds := link(t, s, "app", "config", "layer")
	old := image("app", "old", ds[0], ds[1])
	put(t, s, old, "latest", "v1")

	missing, _ := blob("missing layer")
	m := image("app", "new", ds[0], missing, ds[1])
	err := s.PutManifest(ctx, m, "latest", "v2")
	var bu *meta.BlobUnknownError
	if !errors.As(err, &bu) {
		t.Fatalf("PutManifest with unlinked layer: err = %v, want *meta.BlobUnknownError", err)
	}
	if bu.Digest != missing {
		t.Errorf("BlobUnknownError.Digest = %s, want %s", bu.Digest, missing)
	}
	if !errors.Is(err, meta.ErrBlobNotFound) {
		t.Errorf("errors.Is(%v, ErrBlobNotFound) = false", err)
	}

	// Nothing stored, no tag moved or created.
	_, err = s.GetManifest(ctx, "app", m.Digest)
	wantErr(t, err, meta.ErrManifestNotFound, "GetManifest after failed put")
	if d := resolve(t, s, "app", "latest"); d != old.Digest {
		t.Errorf("latest = %s after failed put, want %s", d, old.Digest)
	}
	_, err = s.ResolveTag(ctx, "app", "v2")
	wantErr(t, err, meta.ErrTagNotFound, "ResolveTag(v2) after failed put")
	checkStrings(t, "Tags", tags(t, s, "app"), []string{"latest", "v1"})

	// A blob linked in another repository does not count.
	link(t, s, "elsewhere", "missing layer")
	err = s.PutManifest(ctx, m, "v2")
	if !errors.As(err, &bu) || bu.Digest != missing {
		t.Fatalf("PutManifest with blob linked elsewhere: err = %v, want BlobUnknownError for %s", err, missing)
	}

	// Once linked, the same put succeeds.
	link(t, s, "app", "missing layer")
	put(t, s, m, "latest", "v2")
	if d := resolve(t, s, "app", "latest"); d != m.Digest {
		t.Errorf("latest = %s, want %s", d, m.Digest)
	}
}

func testPutManifestBlobUnknownNewRepo(t *testing.T, s meta.Store) {
	ctx := t.Context()
	cfg, _ := blob("config")
	link(t, s, "other", "config")
	m := image("new/repo", "x", cfg)
	err := s.PutManifest(ctx, m, "latest")
	var bu *meta.BlobUnknownError
	if !errors.As(err, &bu) || bu.Digest != cfg {
		t.Fatalf("PutManifest: err = %v, want BlobUnknownError for %s", err, cfg)
	}
	// The failed put did not create the repository.
	checkStrings(t, "Repositories", repositories(t, s), []string{"other"})
	_, err = s.Tags(ctx, "new/repo", "", -1)
	wantErr(t, err, meta.ErrRepoNotFound, "Tags of repository of failed put")
}

func testPutManifestRePut(t *testing.T, s meta.Store) {
	ds := link(t, s, "app", "config")
	m := image("app", "one", ds[0])
	m.Annotations = map[string]string{"a": "1"}
	put(t, s, m, "v1")
	first := get(t, s, "app", m.Digest)

	time.Sleep(2 * time.Millisecond)
	again := *m
	put(t, s, &again, "v1", "latest", "stable")
	got := get(t, s, "app", m.Digest)
	checkManifest(t, got, m)
	if !got.Pushed.Equal(first.Pushed) {
		t.Errorf("Pushed = %v after re-put, want the first push time %v", got.Pushed, first.Pushed)
	}
	checkStrings(t, "Tags", tags(t, s, "app"), []string{"latest", "stable", "v1"})
	for _, tag := range []string{"v1", "latest", "stable"} {
		if d := resolve(t, s, "app", tag); d != m.Digest {
			t.Errorf("ResolveTag(%s) = %s, want %s", tag, d, m.Digest)
		}
	}
	// The same tag twice in one call is harmless.
	put(t, s, m, "dup", "dup")
	checkStrings(t, "Tags", tags(t, s, "app"), []string{"dup", "latest", "stable", "v1"})
}

func testPutManifestTwoRepos(t *testing.T, s meta.Store) {
	ctx := t.Context()
	link(t, s, "a", "config")
	ds := link(t, s, "b", "config")
	ma := image("a", "same", ds[0])
	mb := image("b", "same", ds[0])
	if ma.Digest != mb.Digest {
		t.Fatal("test bug: digests differ")
	}
	put(t, s, ma, "x")
	_, err := s.GetManifest(ctx, "b", ma.Digest)
	wantErr(t, err, meta.ErrManifestNotFound, "GetManifest in b before put to b")
	put(t, s, mb, "y")

	checkManifest(t, get(t, s, "a", ma.Digest), ma)
	checkManifest(t, get(t, s, "b", mb.Digest), mb)
	checkStrings(t, "Tags(a)", tags(t, s, "a"), []string{"x"})
	checkStrings(t, "Tags(b)", tags(t, s, "b"), []string{"y"})

	noErr(t, s.DeleteManifest(ctx, "a", ma.Digest), "DeleteManifest in a")
	_, err = s.GetManifest(ctx, "a", ma.Digest)
	wantErr(t, err, meta.ErrManifestNotFound, "GetManifest in a after delete")
	checkManifest(t, get(t, s, "b", mb.Digest), mb)
	if d := resolve(t, s, "b", "y"); d != mb.Digest {
		t.Errorf("ResolveTag(b, y) = %s, want %s", d, mb.Digest)
	}
	checkStrings(t, "Tags(a)", tags(t, s, "a"), []string{})
}

func testTagRepointed(t *testing.T, s meta.Store) {
	ds := link(t, s, "app", "config")
	m1 := image("app", "one", ds[0])
	m2 := image("app", "two", ds[0])
	put(t, s, m1, "latest", "v1")
	put(t, s, m2, "latest")
	if d := resolve(t, s, "app", "latest"); d != m2.Digest {
		t.Errorf("latest = %s, want %s", d, m2.Digest)
	}
	if d := resolve(t, s, "app", "v1"); d != m1.Digest {
		t.Errorf("v1 = %s, want %s", d, m1.Digest)
	}
	// The manifest that lost the tag is still there.
	checkManifest(t, get(t, s, "app", m1.Digest), m1)
	// And back.
	put(t, s, m1, "latest")
	if d := resolve(t, s, "app", "latest"); d != m1.Digest {
		t.Errorf("latest = %s, want %s", d, m1.Digest)
	}
	checkStrings(t, "Tags", tags(t, s, "app"), []string{"latest", "v1"})
}

// testKeepTags: with KeepTags, PutManifest creates tags and leaves tags
// already at the digest alone, but refuses (ErrTagExists, nothing
// changed, the new manifest not stored) to move a tag that points at
// another digest — the check a pusher without overwrite relies on.
func testKeepTags(t *testing.T, s meta.Store) {
	ctx := context.Background()
	ds := link(t, s, "app", "config")
	m1 := image("app", "one", ds[0])
	m2 := image("app", "two", ds[0])
	put(t, s, m1, "latest")
	keep := *m2
	keep.KeepTags = true
	if err := s.PutManifest(ctx, &keep, "new", "latest"); !errors.Is(err, meta.ErrTagExists) {
		t.Fatalf("moving latest with KeepTags: %v, want ErrTagExists", err)
	}
	if d := resolve(t, s, "app", "latest"); d != m1.Digest {
		t.Errorf("latest = %s after a refused move, want %s", d, m1.Digest)
	}
	checkStrings(t, "Tags", tags(t, s, "app"), []string{"latest"})
	if _, err := s.GetManifest(ctx, "app", m2.Digest); !errors.Is(err, meta.ErrManifestNotFound) {
		t.Errorf("the refused manifest was stored: %v", err)
	}
	// New tags, and a tag already at the digest, are fine.
	if err := s.PutManifest(ctx, &keep, "new"); err != nil {
		t.Fatal(err)
	}
	one := *m1
	one.KeepTags = true
	if err := s.PutManifest(ctx, &one, "latest"); err != nil {
		t.Fatalf("re-pushing latest's own digest with KeepTags: %v", err)
	}
	checkStrings(t, "Tags", tags(t, s, "app"), []string{"latest", "new"})
}

func testGetManifestNotFound(t *testing.T, s meta.Store) {
	ctx := t.Context()
	ds := link(t, s, "app", "config")
	m := image("app", "one", ds[0])
	put(t, s, m)
	_, err := s.GetManifest(ctx, "app", digest.FromString("nope"))
	wantErr(t, err, meta.ErrManifestNotFound, "GetManifest of unknown digest")
	_, err = s.GetManifest(ctx, "nope", m.Digest)
	wantErr(t, err, meta.ErrManifestNotFound, "GetManifest in unknown repository")
}

func testResolveTag(t *testing.T, s meta.Store) {
	ctx := t.Context()
	ds := link(t, s, "app", "config")
	m := image("app", "one", ds[0])
	put(t, s, m, "v1")
	if d := resolve(t, s, "app", "v1"); d != m.Digest {
		t.Errorf("ResolveTag = %s, want %s", d, m.Digest)
	}
	_, err := s.ResolveTag(ctx, "app", "v2")
	wantErr(t, err, meta.ErrTagNotFound, "ResolveTag of unknown tag")
	_, err = s.ResolveTag(ctx, "nope", "v1")
	wantErr(t, err, meta.ErrTagNotFound, "ResolveTag in unknown repository")
	// Tags are case-sensitive.
	_, err = s.ResolveTag(ctx, "app", "V1")
	wantErr(t, err, meta.ErrTagNotFound, "ResolveTag(V1)")
}

func testDeleteManifest(t *testing.T, s meta.Store) {
	ctx := t.Context()
	ds := link(t, s, "app", "config", "layer")
	m1 := image("app", "one", ds[0], ds[1])
	m2 := image("app", "two", ds[0])
	put(t, s, m1, "a", "b")
	put(t, s, m2, "c")

	noErr(t, s.DeleteManifest(ctx, "app", m1.Digest), "DeleteManifest")
	_, err := s.GetManifest(ctx, "app", m1.Digest)
	wantErr(t, err, meta.ErrManifestNotFound, "GetManifest after delete")
	for _, tag := range []string{"a", "b"} {
		_, err := s.ResolveTag(ctx, "app", tag)
		wantErr(t, err, meta.ErrTagNotFound, "ResolveTag("+tag+") after delete")
	}
	if d := resolve(t, s, "app", "c"); d != m2.Digest {
		t.Errorf("c = %s, want %s", d, m2.Digest)
	}
	checkStrings(t, "Tags", tags(t, s, "app"), []string{"c"})

	err = s.DeleteManifest(ctx, "app", m1.Digest)
	wantErr(t, err, meta.ErrManifestNotFound, "DeleteManifest twice")
	err = s.DeleteManifest(ctx, "nope", m2.Digest)
	wantErr(t, err, meta.ErrManifestNotFound, "DeleteManifest in unknown repository")

	// Blob links are not the manifest's to remove.
	if _, err := s.BlobLink(ctx, "app", ds[1]); err != nil {
		t.Errorf("BlobLink after DeleteManifest: %v", err)
	}
	// The deleted manifest can be pushed again, with its references.
	put(t, s, m1, "a")
	checkManifest(t, get(t, s, "app", m1.Digest), m1)
	checkStrings(t, "Tags", tags(t, s, "app"), []string{"a", "c"})
}

func testDeleteTag(t *testing.T, s meta.Store) {
	ctx := t.Context()
	ds := link(t, s, "app", "config")
	m := image("app", "one", ds[0])
	put(t, s, m, "v1", "latest")

	noErr(t, s.DeleteTag(ctx, "app", "v1"), "DeleteTag")
	_, err := s.ResolveTag(ctx, "app", "v1")
	wantErr(t, err, meta.ErrTagNotFound, "ResolveTag after DeleteTag")
	checkManifest(t, get(t, s, "app", m.Digest), m)
	if d := resolve(t, s, "app", "latest"); d != m.Digest {
		t.Errorf("latest = %s, want %s", d, m.Digest)
	}
	checkStrings(t, "Tags", tags(t, s, "app"), []string{"latest"})

	err = s.DeleteTag(ctx, "app", "v1")
	wantErr(t, err, meta.ErrTagNotFound, "DeleteTag twice")
	err = s.DeleteTag(ctx, "nope", "latest")
	wantErr(t, err, meta.ErrTagNotFound, "DeleteTag in unknown repository")

	noErr(t, s.DeleteTag(ctx, "app", "latest"), "DeleteTag latest")
	checkStrings(t, "Tags", tags(t, s, "app"), []string{})
	checkManifest(t, get(t, s, "app", m.Digest), m)
}

func testManifestSizes(t *testing.T, s meta.Store) {
	ctx := t.Context()
	ds := link(t, s, "app", "config", "layer")
	a := image("app", "a", ds[0], ds[1])
	b := image("app", "b", ds[0])
	a.TotalSize, b.TotalSize = 1000, 20
	put(t, s, a)
	put(t, s, b)
	link(t, s, "other", "config")
	c := image("other", "c", ds[0])
	c.TotalSize = 7
	put(t, s, c)
	missing := digest.FromString("missing")
	got, err := s.ManifestSizes(ctx, "app", []digest.Digest{a.Digest, b.Digest, b.Digest, c.Digest, missing})
	noErr(t, err, "ManifestSizes")
	want := map[digest.Digest]meta.ManifestSize{
		a.Digest: {Content: int64(len(a.Content)), Total: 1000},
		b.Digest: {Content: int64(len(b.Content)), Total: 20},
	}
	if len(got) != len(want) || got[a.Digest] != want[a.Digest] || got[b.Digest] != want[b.Digest] {
		t.Errorf("ManifestSizes = %v, want %v (c is in another repository)", got, want)
	}
	got, err = s.ManifestSizes(ctx, "nope", []digest.Digest{a.Digest})
	noErr(t, err, "ManifestSizes(unknown repo)")
	if got == nil || len(got) != 0 {
		t.Errorf("ManifestSizes(unknown repo) = %#v, want an empty map", got)
	}
}

// testManifestBody: ManifestBody and TagBody serve a manifest's bytes and
// media type as GetManifest has them, by digest and by tag; a moved tag
// serves its new manifest; what is not there is ErrManifestNotFound or
// ErrTagNotFound, in a known and in an unknown repository.
func testManifestBody(t *testing.T, s meta.Store) {
	ctx := t.Context()
	ds := link(t, s, "app", "config", "layer one", "layer two")
	one, two := image("app", "one", ds[0], ds[1]), image("app", "two", ds[0], ds[2])
	two.MediaType = "application/vnd.docker.distribution.manifest.v2+json"
	put(t, s, one, "latest", "v1")
	put(t, s, two, "v2")
	check := func(what string, got meta.ManifestBody, err error, want *meta.Manifest) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got.Digest != want.Digest || got.MediaType != want.MediaType || !bytes.Equal(got.Content, want.Content) {
			t.Errorf("%s = %s %q %q, want %s %q %q", what, got.Digest, got.MediaType, got.Content, want.Digest, want.MediaType, want.Content)
		}
	}
	for _, m := range []*meta.Manifest{one, two} {
		got, err := s.ManifestBody(ctx, "app", m.Digest)
		check("ManifestBody("+string(m.Digest)+")", got, err, m)
	}
	got, err := s.TagBody(ctx, "app", "latest")
	check("TagBody(latest)", got, err, one)
	got, err = s.TagBody(ctx, "app", "v2")
	check("TagBody(v2)", got, err, two)
	put(t, s, two, "latest")
	got, err = s.TagBody(ctx, "app", "latest")
	check("TagBody(latest) after it moved", got, err, two)

	_, err = s.ManifestBody(ctx, "app", digest.FromString("not pushed"))
	wantErr(t, err, meta.ErrManifestNotFound, "ManifestBody of an unknown digest")
	_, err = s.ManifestBody(ctx, "other", one.Digest)
	wantErr(t, err, meta.ErrManifestNotFound, "ManifestBody in an unknown repository")
	_, err = s.TagBody(ctx, "app", "nope")
	wantErr(t, err, meta.ErrTagNotFound, "TagBody of an unknown tag")
	_, err = s.TagBody(ctx, "other", "latest")
	wantErr(t, err, meta.ErrTagNotFound, "TagBody in an unknown repository")
	// Each tag below was just read, so a store that keeps answers must
	// drop them.
	got, err = s.TagBody(ctx, "app", "v1")
	check("TagBody(v1)", got, err, one)
	if err := s.DeleteTag(ctx, "app", "v1"); err != nil {
		t.Fatal(err)
	}
	_, err = s.TagBody(ctx, "app", "v1")
	wantErr(t, err, meta.ErrTagNotFound, "TagBody of a deleted tag")
	if err := s.DeleteManifest(ctx, "app", one.Digest); err != nil {
		t.Fatal(err)
	}
	_, err = s.ManifestBody(ctx, "app", one.Digest)
	wantErr(t, err, meta.ErrManifestNotFound, "ManifestBody of a deleted manifest")
	got, err = s.TagBody(ctx, "app", "v2")
	check("TagBody(v2)", got, err, two)
	if err := s.DeleteManifest(ctx, "app", two.Digest); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"latest", "v2"} {
		_, err = s.TagBody(ctx, "app", tag)
		wantErr(t, err, meta.ErrTagNotFound, "TagBody("+tag+") of a deleted manifest")
	}
	put(t, s, one, "latest")
	got, err = s.TagBody(ctx, "app", "latest")
	check("TagBody(latest) pushed again", got, err, one)
}

// testTagBodyRace: TagBody while other goroutines move the tag serves one
// of the manifests the tag pointed at, and once the writers are done, the
// last one written: a read that raced a write never leaves what the write
// replaced behind for later reads.
func testTagBodyRace(t *testing.T, s meta.Store) {
	ctx := t.Context()
	ds := link(t, s, "race", "config", "layer")
	ms := make([]*meta.Manifest, 4)
	byDigest := map[digest.Digest]bool{}
	for i := range ms {
		ms[i] = image("race", fmt.Sprintf("m%d", i), ds[0], ds[1])
		put(t, s, ms[i])
		byDigest[ms[i].Digest] = true
	}
	put(t, s, ms[0], "t")
	const rounds = 50
	for round := range rounds {
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 3 {
			wg.Go(func() {
				untilClosed(stop, func() bool {
					b, err := s.TagBody(ctx, "race", "t")
					if err != nil {
						t.Errorf("TagBody while the tag moves: %v", err)
						return false
					}
					if !byDigest[b.Digest] {
						t.Errorf("TagBody = %s, a manifest the tag never pointed at", b.Digest)
						return false
					}
					return true
				})
			})
		}
		// Two writers at once (their writes may share one commit), then
		// the last write alone, the readers still reading.
		var writers sync.WaitGroup
		for w := range 2 {
			writers.Go(func() {
				for i := range 3 {
					if err := s.PutManifest(ctx, ms[(round+w+i)%len(ms)], "t"); err != nil {
						t.Errorf("PutManifest while the tag moves: %v", err)
					}
				}
			})
		}
		writers.Wait()
		last := ms[(round+1)%len(ms)]
		put(t, s, last, "t")
		close(stop)
		wg.Wait()
		b, err := s.TagBody(ctx, "race", "t")
		if err != nil {
			t.Fatal(err)
		}
		if b.Digest != last.Digest {
			t.Fatalf("round %d: TagBody after the writes = %s, want the last written %s", round, b.Digest, last.Digest)
		}
	}
}
