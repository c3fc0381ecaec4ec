package metatest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// CatalogStore is the part of a backend the web catalogue and search
// (package web) read, on top of meta.Store; web declares the same methods
// as web.Catalog.
//
// Listings are keyset-paged: strictly after the cursor, at most n rows
// (n < 0: no limit), in the documented order, never nil.
type CatalogStore interface {
	meta.Store
	// CatalogVersion changes whenever a tag or manifest is added, moved or
	// removed; it is compared for equality only.
	CatalogVersion(ctx context.Context) (string, error)
	// CatalogTags orders by (Repo, Tag).
	CatalogTags(ctx context.Context, after meta.TagKey, n int) ([]meta.CatalogTag, error)
	// CatalogChildren lists the children of tagged indexes only, ordered
	// by (Repo, Index, Ord).
	CatalogChildren(ctx context.Context, after meta.ChildKey, n int) ([]meta.CatalogChild, error)
	// CatalogRepo lists one repository's rows of the two above.
	CatalogRepo(ctx context.Context, repo string) ([]meta.CatalogTag, []meta.CatalogChild, error)
}

// RunCatalog runs the catalogue contract, one subtest per behaviour, each
// on a fresh, empty store from newStore (which arranges for its closing).
func RunCatalog(t *testing.T, newStore func(t *testing.T) CatalogStore) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s CatalogStore)
	}{
		{"Empty", testCatalogEmpty},
		{"Tags", testCatalogTags},
		{"TagsPaging", testCatalogTagsPaging},
		{"TagRepushKeepsUpdated", testCatalogTagRepush},
		{"Children", testCatalogChildren},
		{"Repo", testCatalogRepo},
		{"Version", testCatalogVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func catalogTags(t *testing.T, s CatalogStore, after meta.TagKey, n int) []meta.CatalogTag {
	t.Helper()
	ts, err := s.CatalogTags(t.Context(), after, n)
	if err != nil {
		t.Fatalf("CatalogTags(%v, %d): %v", after, n, err)
	}
	if ts == nil {
		t.Fatalf("CatalogTags(%v, %d) = nil, want a non-nil slice", after, n)
	}
	return ts
}

func catalogChildren(t *testing.T, s CatalogStore, after meta.ChildKey, n int) []meta.CatalogChild {
	t.Helper()
	cs, err := s.CatalogChildren(t.Context(), after, n)
	if err != nil {
		t.Fatalf("CatalogChildren(%v, %d): %v", after, n, err)
	}
	if cs == nil {
		t.Fatalf("CatalogChildren(%v, %d) = nil, want a non-nil slice", after, n)
	}
	return cs
}

func catalogVersion(t *testing.T, s CatalogStore) string {
	t.Helper()
	v, err := s.CatalogVersion(t.Context())
	if err != nil {
		t.Fatalf("CatalogVersion: %v", err)
	}
	return v
}

func testCatalogEmpty(t *testing.T, s CatalogStore) {
	if got := catalogTags(t, s, meta.TagKey{}, -1); len(got) != 0 {
		t.Errorf("CatalogTags on an empty store = %v", got)
	}
	if got := catalogChildren(t, s, meta.ChildKey{}, -1); len(got) != 0 {
		t.Errorf("CatalogChildren on an empty store = %v", got)
	}
	link(t, s, "blobs/only", "config")
	if got := catalogTags(t, s, meta.TagKey{}, 10); len(got) != 0 {
		t.Errorf("CatalogTags with only a blob = %v", got)
	}
	if got := catalogTags(t, s, meta.TagKey{}, 0); len(got) != 0 {
		t.Errorf("CatalogTags(n=0) = %v", got)
	}
}

func testCatalogTags(t *testing.T, s CatalogStore) {
	ds := link(t, s, "app", "config", "layer")
	created := time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC)
	m := image("app", "v1", ds[0], ds[1])
	m.Labels = map[string]string{meta.FlatpakRefLabel: "app/org.example.App/x86_64/stable", "other": "x"}
	m.Annotations = map[string]string{"a": "b"}
	m.Architecture, m.Variant, m.Created, m.TotalSize = "arm64", "v8", created, 1234
	before := time.Now()
	put(t, s, m, "v1", "latest")
	after := time.Now()
	plain := image("app", "plain", ds[0])
	put(t, s, plain) // untagged: not listed
	link(t, s, "zeta", "config")
	put(t, s, image("zeta", "z", ds[0]), "1")

	got := catalogTags(t, s, meta.TagKey{}, -1)
	keys := make([]meta.TagKey, len(got))
	for i, ct := range got {
		keys[i] = ct.TagKey
	}
	want := []meta.TagKey{{Repo: "app", Tag: "latest"}, {Repo: "app", Tag: "v1"}, {Repo: "zeta", Tag: "1"}}
	if !slices.Equal(keys, want) {
		t.Fatalf("CatalogTags keys = %v, want %v", keys, want)
	}
	ct := got[1]
	if ct.Digest != m.Digest || ct.MediaType != m.MediaType || ct.ArtifactType != m.ArtifactType {
		t.Errorf("tag v1 = %s %s %s, want %s %s %s", ct.Digest, ct.MediaType, ct.ArtifactType, m.Digest, m.MediaType, m.ArtifactType)
	}
	if ct.OS != "linux" || ct.Architecture != "arm64" || ct.Variant != "v8" || ct.TotalSize != 1234 {
		t.Errorf("tag v1 platform/size = %s/%s/%s %d", ct.OS, ct.Architecture, ct.Variant, ct.TotalSize)
	}
	if !ct.Created.Equal(created) {
		t.Errorf("Created = %v, want %v", ct.Created, created)
	}
	checkTime(t, "Pushed", ct.Pushed, before, after)
	checkTime(t, "Updated", ct.Updated, before, after)
	if ct.FlatpakRef != "app/org.example.App/x86_64/stable" {
		t.Errorf("FlatpakRef = %q", ct.FlatpakRef)
	}
	if z := got[2]; z.FlatpakRef != "" || !z.Created.IsZero() {
		t.Errorf("plain image: FlatpakRef = %q, Created = %v; want both empty", z.FlatpakRef, z.Created)
	}

	// Moving a tag moves its row; deleting it removes it.
	put(t, s, plain, "latest")
	got = catalogTags(t, s, meta.TagKey{Repo: "app"}, 1)
	if len(got) != 1 || got[0].Tag != "latest" || got[0].Digest != plain.Digest || got[0].FlatpakRef != "" {
		t.Errorf("after moving latest: %+v", got)
	}
	if !got[0].Updated.After(ct.Updated) && !got[0].Updated.Equal(ct.Updated) {
		t.Errorf("moved tag Updated = %v, before its first push %v", got[0].Updated, ct.Updated)
	}
	noErr(t, s.DeleteTag(t.Context(), "app", "v1"), "DeleteTag")
	got = catalogTags(t, s, meta.TagKey{}, -1)
	if len(got) != 2 || got[0].Tag != "latest" || got[1].Repo != "zeta" {
		t.Errorf("after deleting v1: %+v", got)
	}
}

// testCatalogTagRepush: pushing a tag to the digest it already has is no
// move: the tag's Updated time stays (it orders "last pushed" listings).
func testCatalogTagRepush(t *testing.T, s CatalogStore) {
	ds := link(t, s, "app", "config")
	m := image("app", "v1", ds[0])
	put(t, s, m, "v1")
	first := catalogTags(t, s, meta.TagKey{}, -1)
	if len(first) != 1 {
		t.Fatalf("CatalogTags = %+v", first)
	}
	// Let the clock pass the first push, so a rewrite would show.
	for !time.Now().After(first[0].Updated) {
	}
	put(t, s, m, "v1")
	again := catalogTags(t, s, meta.TagKey{}, -1)
	if len(again) != 1 || !again[0].Updated.Equal(first[0].Updated) {
		t.Errorf("re-pushing v1 to the same digest: Updated %v, want %v (unchanged)", again[0].Updated, first[0].Updated)
	}
	other := image("app", "v2", ds[0])
	put(t, s, other, "v1")
	moved := catalogTags(t, s, meta.TagKey{}, -1)
	if !moved[0].Updated.After(first[0].Updated) {
		t.Errorf("moving v1: Updated %v, want after %v", moved[0].Updated, first[0].Updated)
	}
}

func testCatalogTagsPaging(t *testing.T, s CatalogStore) {
	ds := link(t, s, "a", "config")
	link(t, s, "a/b", "config")
	link(t, s, "b", "config")
	var all []meta.TagKey
	for _, repo := range []string{"a", "a/b", "b"} {
		m := image(repo, repo, ds[0])
		tags := []string{"1", "10", "2", "latest"}
		put(t, s, m, tags...)
		for _, tag := range tags {
			all = append(all, meta.TagKey{Repo: repo, Tag: tag})
		}
	}
	for _, n := range []int{1, 2, 5, len(all)} {
		var walked []meta.TagKey
		var after meta.TagKey
		for range len(all) + 2 {
			page := catalogTags(t, s, after, n)
			if len(page) > n {
				t.Fatalf("n=%d: page of %d", n, len(page))
			}
			if len(page) == 0 {
				break
			}
			for _, ct := range page {
				walked = append(walked, ct.TagKey)
			}
			after = page[len(page)-1].TagKey
		}
		if !slices.Equal(walked, all) {
			t.Errorf("walk with n=%d = %v, want %v", n, walked, all)
		}
	}
}

func testCatalogChildren(t *testing.T, s CatalogStore) {
	ds := link(t, s, "multi", "config")
	amd := image("multi", "amd", ds[0])
	amd.Labels = map[string]string{meta.FlatpakRefLabel: "app/org.example.App/x86_64/stable"}
	amd.TotalSize = 100
	arm := image("multi", "arm", ds[0])
	arm.Architecture, arm.Variant, arm.TotalSize = "arm64", "v8", 200
	put(t, s, amd)
	put(t, s, arm)
	missing := digest.FromString("not pushed")
	idx := image("multi", "index", "")
	idx.MediaType = "application/vnd.oci.image.index.v1+json"
	idx.Refs = []meta.Ref{
		{Digest: amd.Digest, Kind: meta.RefManifest, MediaType: amd.MediaType, Size: 11, Platform: "linux/amd64"},
		{Digest: arm.Digest, Kind: meta.RefManifest, MediaType: arm.MediaType, Size: 12, Platform: "linux/arm64/v8"},
		{Digest: missing, Kind: meta.RefManifest, MediaType: amd.MediaType, Size: 13, Platform: "linux/s390x"},
	}
	put(t, s, idx)
	if got := catalogChildren(t, s, meta.ChildKey{}, -1); len(got) != 0 {
		t.Fatalf("children of an untagged index are listed: %+v", got)
	}
	put(t, s, idx, "latest", "v1") // two tags: listed once
	untagged := image("multi", "other-index", "")
	untagged.MediaType = idx.MediaType
	untagged.Refs = idx.Refs[:1]
	put(t, s, untagged)

	got := catalogChildren(t, s, meta.ChildKey{}, -1)
	if len(got) != 3 {
		t.Fatalf("CatalogChildren = %+v, want 3 children", got)
	}
	for i, c := range got {
		if c.Repo != "multi" || c.Index != idx.Digest || c.Ord != i || c.Digest != idx.Refs[i].Digest ||
			c.Size != idx.Refs[i].Size || c.Platform != idx.Refs[i].Platform || c.MediaType != idx.Refs[i].MediaType {
			t.Errorf("child %d = %+v, want descriptor %+v of %s", i, c, idx.Refs[i], idx.Digest)
		}
	}
	if c := got[0]; !c.Stored || c.OS != "linux" || c.Architecture != "amd64" || c.TotalSize != 100 ||
		c.FlatpakRef != "app/org.example.App/x86_64/stable" {
		t.Errorf("child 0 facts = %+v", c)
	}
	if c := got[1]; !c.Stored || c.Architecture != "arm64" || c.Variant != "v8" || c.TotalSize != 200 || c.FlatpakRef != "" {
		t.Errorf("child 1 facts = %+v", c)
	}
	if c := got[2]; c.Stored || c.OS != "" || c.Architecture != "" || c.TotalSize != 0 || c.FlatpakRef != "" {
		t.Errorf("missing child = %+v, want no facts", c)
	}

	// Paging.
	var walked []meta.ChildKey
	var after meta.ChildKey
	for range 5 {
		page := catalogChildren(t, s, after, 1)
		if len(page) == 0 {
			break
		}
		walked = append(walked, page[0].ChildKey)
		after = page[0].ChildKey
	}
	if len(walked) != 3 || walked[2].Ord != 2 {
		t.Errorf("paging one by one = %+v", walked)
	}
}

func testCatalogVersion(t *testing.T, s CatalogStore) {
	// Each change gives a version other than the one before it. (A version
	// may come back when the state it stood for does: deleting a tag just
	// added.)
	var prev, prevWhat string
	step := func(what string) {
		t.Helper()
		v := catalogVersion(t, s)
		if prevWhat != "" && v == prev {
			t.Errorf("after %s the version %q is still the one seen after %s", what, v, prevWhat)
		}
		if again := catalogVersion(t, s); again != v {
			t.Errorf("after %s: version changed without a write: %q then %q", what, v, again)
		}
		prev, prevWhat = v, what
	}
	step("nothing")
	ds := link(t, s, "app", "config")
	a := image("app", "a", ds[0])
	b := image("app", "b", ds[0])
	put(t, s, a, "v1")
	step("push a:v1")
	put(t, s, b)
	step("push b untagged")
	put(t, s, b, "v1")
	step("move v1 to b")
	put(t, s, a, "v2")
	step("tag a:v2")
	noErr(t, s.DeleteTag(t.Context(), "app", "v2"), "DeleteTag")
	step("delete v2")
	put(t, s, a, "v2")
	step("tag a:v2 again")
	noErr(t, s.DeleteManifest(t.Context(), "app", a.Digest), "DeleteManifest")
	step("delete a")
	for i := range 3 {
		put(t, s, image("app", fmt.Sprint("c", i), ds[0]), fmt.Sprint("c", i))
		step(fmt.Sprint("push c", i))
	}
	// Replacing one tag by another in between two looks.
	put(t, s, image("app", "d", ds[0]), "d")
	noErr(t, s.DeleteTag(t.Context(), "app", "c0"), "DeleteTag")
	step("tag d, delete c0")
}

// testCatalogRepo: one repository's rows are exactly its rows of the whole
// listings, in their order, for repositories before, between and after
// others (names that share prefixes), with and without index children;
// an unknown repository has none (empty, not nil).
func testCatalogRepo(t *testing.T, s CatalogStore) {
	for _, repo := range []string{"a", "a/b", "ab", "multi", "z"} {
		ds := link(t, s, repo, "config")
		m := image(repo, "one "+repo, ds[0])
		put(t, s, m, "v1", "latest")
		put(t, s, image(repo, "two "+repo, ds[0]), "v2")
		if repo == "multi" || repo == "a" {
			idx := image(repo, "index "+repo, "")
			idx.MediaType = "application/vnd.oci.image.index.v1+json"
			idx.Refs = []meta.Ref{{Digest: m.Digest, Kind: meta.RefManifest, MediaType: m.MediaType, Size: 11, Platform: "linux/amd64"}}
			put(t, s, idx, "multi")
		}
	}
	allTags := catalogTags(t, s, meta.TagKey{}, -1)
	allChildren := catalogChildren(t, s, meta.ChildKey{}, -1)
	for _, repo := range []string{"a", "a/b", "ab", "multi", "z", "unknown"} {
		tags, children, err := s.CatalogRepo(t.Context(), repo)
		if err != nil {
			t.Fatalf("CatalogRepo(%q): %v", repo, err)
		}
		if tags == nil || children == nil {
			t.Fatalf("CatalogRepo(%q) = %v, %v, want non-nil slices", repo, tags, children)
		}
		wantTags := []meta.CatalogTag{}
		for _, ct := range allTags {
			if ct.Repo == repo {
				wantTags = append(wantTags, ct)
			}
		}
		wantChildren := []meta.CatalogChild{}
		for _, c := range allChildren {
			if c.Repo == repo {
				wantChildren = append(wantChildren, c)
			}
		}
		if !reflect.DeepEqual(tags, wantTags) {
			t.Errorf("CatalogRepo(%q) tags = %+v, want %+v", repo, tags, wantTags)
		}
		if !reflect.DeepEqual(children, wantChildren) {
			t.Errorf("CatalogRepo(%q) children = %+v, want %+v", repo, children, wantChildren)
		}
	}
}
