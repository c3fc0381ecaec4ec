package metatest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// IndexStore is the part of a backend that the Flatpak remote (package
// flatpak) and the web catalogue use, on top of meta.Store. Package
// flatpak declares the slices it consumes; this is their union and the
// contract every backend must pass.
//
// IndexGeneration is a counter that increases with every committed change
// to manifests, tags or manifest icons (a push of a new manifest, a tag
// created, moved or deleted, a manifest deleted, an icon recorded or
// replaced) and with nothing else: re-pushing a stored manifest with the
// tags it already has, recording the icon a manifest already shows,
// linking blobs and reading leave it alone.
//
// That is the generation of meta.ScopeAll. The generation of
// meta.ScopeFlatpak (the scope of every filter requiring the
// org.flatpak.ref label, meta.IndexFilter.Scope) increases with every
// committed change that alters an answer of that scope, and never for
// writes of image manifests without the label or of tags on them, so
// pushes of server images leave the Flatpak index's cache valid; it may
// also increase for other changes (an index, whose children may carry the
// label). The two counters are independent: compare a generation only
// with one of the same scope.
//
// IndexImages answers the Flatpak registry index from one snapshot of the
// store, and returns that snapshot's generation, of the filter's scope. It calls fn
//
//   - with list == nil for each image manifest (OCI image manifest or
//     Docker schema 2 manifest) that has at least one tag, and tags = all
//     its tags;
//   - with list != nil for each image manifest that a tagged index (OCI
//     index or Docker manifest list) of the same repository references,
//     once per such index, and tags = all the index's tags.
//
// Untagged manifests, and manifests reachable only through an untagged
// index, are not listed. filter narrows the result; its keys are those of
// the registry index protocol, each with one or more values (values of the
// same key are alternatives, different keys must all hold):
//
//   - "repository": the manifest's repository name;
//   - "tag": one of the tags that makes it listed (its own tag, or its
//     index's);
//   - "os", "architecture": the image's (from its config);
//   - "label:K" / "annotation:K": the image's config label / manifest
//     annotation K has one of the values;
//   - "label:K:exists" / "annotation:K:exists": K is present (values are
//     ignored).
//
// Conditions other than repository and tag apply to the image, never to
// the index. A key with no values matches nothing; any other key is an
// error. The manifests passed to fn have Repo, Digest, MediaType,
// Annotations, Labels, OS, Architecture, Variant, Created, TotalSize and
// Pushed set (no Content, no Refs); list has Repo, Digest, MediaType and
// Annotations. fn may keep them; an error from fn stops the walk and is
// returned. icons are the icons the image shows, by size, as
// ManifestIcons would return them from the same snapshot (never nil). Order:
// first the images with list == nil, by repository and digest; then the
// lists' images, by repository, list digest and position in the list.
//
// PutIcon stores an icon's bytes once per digest and records that a
// manifest shows it at a size; it fails with an error matching
// meta.ErrManifestNotFound if the manifest is not stored. Icon returns the
// bytes, or ok == false. ManifestIcons returns the icons of each of the
// given manifests by size, in one query; a manifest without icons (or
// unknown) is absent from the map, which is never nil. An icon lives while a manifest shows it: deleting
// the last such manifest (or recording another icon in its place) deletes
// the icon. ManifestsWithoutIcons pages, by (repository, digest), through
// the manifests (tagged or not) whose org.freedesktop.appstream.icon-64 or
// -128 label or annotation holds a data: URI and that show no icon; each
// comes with Repo, Digest, and only those icon keys in Labels and
// Annotations (both non-nil); the result is never nil.
type IndexStore interface {
	meta.Store
	IndexGeneration(ctx context.Context, scope meta.IndexScope) (int64, error)
	IndexImages(ctx context.Context, filter meta.IndexFilter, fn func(img, list *meta.Manifest, tags []string, icons map[int]digest.Digest) error) (int64, error)
	PutIcon(ctx context.Context, key meta.ManifestKey, size int, d digest.Digest, png []byte) error
	Icon(ctx context.Context, d digest.Digest) ([]byte, bool, error)
	ManifestIcons(ctx context.Context, keys ...meta.ManifestKey) (map[meta.ManifestKey]map[int]digest.Digest, error)
	ManifestsWithoutIcons(ctx context.Context, after meta.ManifestKey, n int) ([]meta.Manifest, error)
}

// RunIndex runs the IndexStore contract, one subtest per behaviour, each
// on a store returned by newStore (a new, empty store, closed by the
// factory's t.Cleanup).
func RunIndex(t *testing.T, newStore func(t *testing.T) IndexStore) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s IndexStore)
	}{
		{"Generation", testIndexGeneration},
		{"Generation/FlatpakScope", testFlatpakGeneration},
		{"Images/TaggedOnly", testIndexTaggedOnly},
		{"Images/Filters", testIndexFilters},
		{"Images/Lists", testIndexLists},
		{"Images/Snapshot", testIndexSnapshot},
		{"Images/BadFilter", testIndexBadFilter},
		{"Images/FnError", testIndexFnError},
		{"Icons", testIcons},
		{"Icons/Lifetime", testIconsLifetime},
		{"Icons/WithManifest", testIconsWithManifest},
		{"Icons/InIndex", testIconsInIndex},
		{"Icons/Missing", testManifestsWithoutIcons},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func generation(t *testing.T, s IndexStore) int64 {
	t.Helper()
	g, err := s.IndexGeneration(t.Context(), meta.ScopeAll)
	if err != nil {
		t.Fatalf("IndexGeneration: %v", err)
	}
	return g
}

func testIndexGeneration(t *testing.T, s IndexStore) {
	ctx := t.Context()
	g := generation(t, s)
	step := func(what string, changes bool, fn func()) {
		t.Helper()
		fn()
		ng := generation(t, s)
		switch {
		case changes && ng <= g:
			t.Errorf("%s: generation %d -> %d, want it to increase", what, g, ng)
		case !changes && ng != g:
			t.Errorf("%s: generation %d -> %d, want it unchanged", what, g, ng)
		}
		g = ng
	}
	a, b := image("app", "a", ""), image("app", "b", "")
	step("LinkBlob", false, func() { link(t, s, "app", "config") })
	step("push a:v1", true, func() { put(t, s, a, "v1") })
	step("push a:v1 again", false, func() { put(t, s, a, "v1") })
	step("read", false, func() {
		get(t, s, "app", a.Digest)
		resolve(t, s, "app", "v1")
		if _, err := s.IndexImages(ctx, meta.IndexFilter{}, func(_, _ *meta.Manifest, _ []string, _ map[int]digest.Digest) error { return nil }); err != nil {
			t.Fatal(err)
		}
	})
	step("tag a:latest", true, func() { put(t, s, a, "latest") })
	step("push b untagged", true, func() { put(t, s, b) })
	step("move latest to b", true, func() { put(t, s, b, "latest") })
	step("delete tag v1", true, func() { noErr(t, s.DeleteTag(ctx, "app", "v1"), "DeleteTag") })
	step("delete manifest b", true, func() { noErr(t, s.DeleteManifest(ctx, "app", b.Digest), "DeleteManifest") })
	step("failed delete", false, func() {
		wantErr(t, s.DeleteTag(ctx, "app", "nope"), meta.ErrTagNotFound, "DeleteTag")
	})
}

// testFlatpakGeneration: the ScopeFlatpak generation changes whenever the
// answer to the flatpak client's filter changes, and not for pushes, tag
// moves and deletes of images without the label; ScopeAll changes for all.
func testFlatpakGeneration(t *testing.T, s IndexStore) {
	ctx := t.Context()
	flatpakQuery := map[string][]string{"label:org.flatpak.ref:exists": {"1"}}
	if filterOf(t, flatpakQuery).Scope() != meta.ScopeFlatpak {
		t.Fatal("the flatpak client's filter is not of ScopeFlatpak")
	}
	gen := func(scope meta.IndexScope) int64 {
		t.Helper()
		g, err := s.IndexGeneration(ctx, scope)
		noErr(t, err, "IndexGeneration")
		return g
	}
	answer := func() string { return fmt.Sprint(indexImages(t, s, flatpakQuery)) }
	g, ga, ans := gen(meta.ScopeFlatpak), gen(meta.ScopeAll), answer()
	// step applies fn; flatpak says whether the Flatpak generation must
	// increase (true), must not change (false). The ScopeAll generation
	// must increase every time, and a changed Flatpak answer needs a
	// changed Flatpak generation whatever flatpak says.
	step := func(what string, flatpak bool, fn func()) {
		t.Helper()
		fn()
		ng, nga, nans := gen(meta.ScopeFlatpak), gen(meta.ScopeAll), answer()
		switch {
		case nans != ans && ng == g:
			t.Errorf("%s: the Flatpak answer changed but its generation stayed %d", what, g)
		case flatpak && ng <= g:
			t.Errorf("%s: Flatpak generation %d -> %d, want it to increase", what, g, ng)
		case !flatpak && ng != g:
			t.Errorf("%s: Flatpak generation %d -> %d, want it unchanged (no Flatpak image involved)", what, g, ng)
		case ng < g:
			t.Errorf("%s: Flatpak generation went back, %d -> %d", what, g, ng)
		}
		if nga <= ga {
			t.Errorf("%s: ScopeAll generation %d -> %d, want it to increase", what, ga, nga)
		}
		g, ga, ans = ng, nga, nans
	}
	labels := map[string]string{meta.FlatpakRefLabel: "app/org.example.App/x86_64/stable"}
	server, server2 := image("srv", "server", ""), image("srv", "server2", "")
	app := flatpakImage("apps", "app", "amd64", labels, nil)
	child := flatpakImage("multi", "child", "amd64", labels, nil)
	plainChild := image("multi", "plain-child", "")
	idx := indexOf("multi", "idx", child, plainChild)

	step("push a server image with a tag", false, func() { put(t, s, server, "v1") })
	step("push another, untagged", false, func() { put(t, s, server2) })
	step("move the server tag", false, func() { put(t, s, server2, "v1") })
	step("tag the server image again", false, func() { put(t, s, server, "v2") })
	step("delete a server tag", false, func() { noErr(t, s.DeleteTag(ctx, "srv", "v2"), "DeleteTag") })
	step("delete a server image", false, func() { noErr(t, s.DeleteManifest(ctx, "srv", server.Digest), "DeleteManifest") })
	step("push an app, untagged", true, func() { put(t, s, app) })
	step("tag the app", true, func() { put(t, s, app, "stable") })
	step("record the app's icon", true, func() {
		png := []byte("\x89PNG icon")
		noErr(t, s.PutIcon(ctx, meta.ManifestKey{Repo: "apps", Digest: app.Digest}, 64, digest.FromBytes(png), png), "PutIcon")
	})
	step("push an index's children", true, func() { put(t, s, child); put(t, s, plainChild) })
	step("tag the index", true, func() { put(t, s, idx, "latest") })
	step("tag the app v1", true, func() { put(t, s, app, "v1") })
	step("delete the index's tag", true, func() { noErr(t, s.DeleteTag(ctx, "multi", "latest"), "DeleteTag") })
	step("delete the app's tag", true, func() { noErr(t, s.DeleteTag(ctx, "apps", "stable"), "DeleteTag") })
	step("delete the app", true, func() {
		noErr(t, s.DeleteTag(ctx, "apps", "v1"), "DeleteTag")
		noErr(t, s.DeleteManifest(ctx, "apps", app.Digest), "DeleteManifest")
	})

	// IndexImages reports the generation of its filter's scope.
	put(t, s, server, "v3")
	for _, q := range []map[string][]string{flatpakQuery, {"repository": {"srv"}}} {
		f := filterOf(t, q)
		want := gen(f.Scope())
		got, err := s.IndexImages(ctx, f, func(_, _ *meta.Manifest, _ []string, _ map[int]digest.Digest) error { return nil })
		noErr(t, err, "IndexImages")
		if got != want {
			t.Errorf("IndexImages(%v) generation = %d, want IndexGeneration(%v) = %d", q, got, f.Scope(), want)
		}
	}
}

// indexEntry is one call of IndexImages' fn, flattened for comparison.
type indexEntry struct {
	repo   string
	digest digest.Digest
	list   digest.Digest // "" for a tagged image
	tags   string        // sorted, comma-separated
}

func (e indexEntry) String() string {
	if e.list != "" {
		return fmt.Sprintf("%s@%s in %s [%s]", e.repo, short(e.digest), short(e.list), e.tags)
	}
	return fmt.Sprintf("%s@%s [%s]", e.repo, short(e.digest), e.tags)
}

func short(d digest.Digest) string {
	if len(d) > 15 {
		return string(d[7:15])
	}
	return string(d)
}

// filterOf parses a protocol query into the typed filter.
func filterOf(t *testing.T, query map[string][]string) meta.IndexFilter {
	t.Helper()
	f, err := meta.ParseIndexFilter(query)
	if err != nil {
		t.Fatalf("ParseIndexFilter(%v): %v", query, err)
	}
	return f
}

func indexImages(t *testing.T, s IndexStore, filter map[string][]string) []indexEntry {
	t.Helper()
	out := []indexEntry{}
	_, err := s.IndexImages(t.Context(), filterOf(t, filter), func(img, list *meta.Manifest, tags []string, _ map[int]digest.Digest) error {
		e := indexEntry{repo: img.Repo, digest: img.Digest}
		if list != nil {
			e.list = list.Digest
			if list.Repo != img.Repo {
				t.Errorf("list %s@%s holds an image of %s", list.Repo, list.Digest, img.Repo)
			}
		}
		tags = slices.Clone(tags)
		slices.Sort(tags)
		e.tags = strings.Join(tags, ",")
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatalf("IndexImages(%v): %v", filter, err)
	}
	return out
}

func checkIndex(t *testing.T, s IndexStore, filter map[string][]string, want ...indexEntry) {
	t.Helper()
	got := indexImages(t, s, filter)
	if want == nil {
		want = []indexEntry{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("IndexImages(%v):\n got  %v\n want %v", filter, got, want)
	}
}

// flatpakImage is an image manifest with Flatpak-like labels.
func flatpakImage(repo, name, arch string, labels map[string]string, annotations map[string]string) *meta.Manifest {
	m := image(repo, name+"/"+arch, "")
	m.Architecture = arch
	m.Labels = labels
	m.Annotations = annotations
	return m
}

func indexOf(repo, name string, children ...*meta.Manifest) *meta.Manifest {
	content := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","name":%q}`, name)
	m := &meta.Manifest{
		Repo:      repo,
		Digest:    digest.FromBytes(content),
		MediaType: "application/vnd.oci.image.index.v1+json",
		Content:   content,
	}
	for _, c := range children {
		m.Refs = append(m.Refs, meta.Ref{Digest: c.Digest, Kind: meta.RefManifest, MediaType: c.MediaType,
			Size: int64(len(c.Content)), Platform: c.OS + "/" + c.Architecture})
	}
	return m
}

func testIndexTaggedOnly(t *testing.T, s IndexStore) {
	tagged := image("app", "tagged", "")
	untagged := image("app", "untagged", "")
	other := image("other", "x", "")
	put(t, s, tagged, "v1", "latest")
	put(t, s, untagged)
	put(t, s, other, "1.0")
	// A lone index (its child is untagged): only its image is listed, under
	// the list.
	child := image("multi", "child", "")
	put(t, s, child)
	idx := indexOf("multi", "idx", child)
	put(t, s, idx, "stable")
	// An artifact manifest type the index does not list.
	art := image("app", "artifact", "")
	art.MediaType = "application/vnd.example.not-an-image"
	put(t, s, art, "art")

	checkIndex(t, s, nil,
		indexEntry{repo: "app", digest: tagged.Digest, tags: "latest,v1"},
		indexEntry{repo: "other", digest: other.Digest, tags: "1.0"},
		indexEntry{repo: "multi", digest: child.Digest, list: idx.Digest, tags: "stable"},
	)

	// The manifests passed to fn carry the recorded facts.
	full := flatpakImage("full", "f", "arm64", map[string]string{"l": "1"}, map[string]string{"a": "2"})
	full.Variant = "v8"
	full.OS = "linux"
	put(t, s, full, "t")
	var got *meta.Manifest
	_, err := s.IndexImages(t.Context(), filterOf(t, map[string][]string{"repository": {"full"}}), func(img, _ *meta.Manifest, _ []string, _ map[int]digest.Digest) error {
		got = img
		return nil
	})
	noErr(t, err, "IndexImages")
	if got == nil {
		t.Fatal("full not listed")
	}
	if got.Repo != "full" || got.Digest != full.Digest || got.MediaType != full.MediaType ||
		got.OS != "linux" || got.Architecture != "arm64" || got.Variant != "v8" ||
		!maps.Equal(got.Labels, full.Labels) || !maps.Equal(got.Annotations, full.Annotations) ||
		got.TotalSize != full.TotalSize || got.Pushed.IsZero() {
		t.Errorf("listed manifest = %+v, want the facts of %+v", got, full)
	}
}

func testIndexFilters(t *testing.T, s IndexStore) {
	ref := func(id string) map[string]string {
		return map[string]string{"org.flatpak.ref": "app/" + id + "/x86_64/stable", "org.flatpak.metadata": "[Application]\nname=" + id + "\n"}
	}
	helloAmd := flatpakImage("hello", "hello", "amd64", ref("Hello"), nil)
	helloArm := flatpakImage("hello", "hello", "arm64", ref("Hello"), nil)
	helloBeta := flatpakImage("hello", "hello-beta", "amd64", ref("Hello"), map[string]string{"org.example.channel": "beta"})
	server := flatpakImage("server", "srv", "amd64", map[string]string{"maintainer": "ops"}, map[string]string{"org.example.channel": "stable"})
	weird := flatpakImage("weird", "w", "amd64", map[string]string{`we"ird$.key`: `va'lue"`, "empty": ""}, nil)
	put(t, s, helloAmd, "latest")
	put(t, s, helloArm, "latest-arm")
	put(t, s, helloBeta, "beta")
	put(t, s, server, "latest", "1.0")
	put(t, s, weird, "latest")

	hA := indexEntry{repo: "hello", digest: helloAmd.Digest, tags: "latest"}
	hR := indexEntry{repo: "hello", digest: helloArm.Digest, tags: "latest-arm"}
	hB := indexEntry{repo: "hello", digest: helloBeta.Digest, tags: "beta"}
	srv := indexEntry{repo: "server", digest: server.Digest, tags: "1.0,latest"}
	wd := indexEntry{repo: "weird", digest: weird.Digest, tags: "latest"}
	sorted := func(es ...indexEntry) []indexEntry {
		slices.SortFunc(es, func(a, b indexEntry) int {
			if a.repo != b.repo {
				return strings.Compare(a.repo, b.repo)
			}
			return strings.Compare(string(a.digest), string(b.digest))
		})
		return es
	}
	for _, tc := range []struct {
		name   string
		filter map[string][]string
		want   []indexEntry
	}{
		{"none", nil, sorted(hA, hR, hB, srv, wd)},
		{"empty map", map[string][]string{}, sorted(hA, hR, hB, srv, wd)},
		{"repository", map[string][]string{"repository": {"hello"}}, sorted(hA, hR, hB)},
		{"repository or", map[string][]string{"repository": {"server", "weird", "nope"}}, sorted(srv, wd)},
		{"repository unknown", map[string][]string{"repository": {"nope"}}, nil},
		{"tag", map[string][]string{"tag": {"latest"}}, sorted(hA, srv, wd)},
		{"tag or", map[string][]string{"tag": {"beta", "1.0"}}, sorted(hB, srv)},
		{"tag unknown", map[string][]string{"tag": {"v9"}}, nil},
		{"os", map[string][]string{"os": {"linux"}}, sorted(hA, hR, hB, srv, wd)},
		{"os other", map[string][]string{"os": {"windows"}}, nil},
		{"architecture", map[string][]string{"architecture": {"arm64"}}, sorted(hR)},
		{"architecture or", map[string][]string{"architecture": {"arm64", "amd64"}}, sorted(hA, hR, hB, srv, wd)},
		{"label exists", map[string][]string{"label:org.flatpak.ref:exists": {"1"}}, sorted(hA, hR, hB)},
		{"label equals", map[string][]string{"label:maintainer": {"ops"}}, sorted(srv)},
		{"label equals or", map[string][]string{"label:maintainer": {"dev", "ops"}}, sorted(srv)},
		{"label equals other", map[string][]string{"label:maintainer": {"dev"}}, nil},
		{"label equals empty value", map[string][]string{"label:empty": {""}}, sorted(wd)},
		{"label odd key", map[string][]string{`label:we"ird$.key`: {`va'lue"`}}, sorted(wd)},
		{"label odd key exists", map[string][]string{`label:we"ird$.key:exists`: {"1"}}, sorted(wd)},
		{"label absent", map[string][]string{"label:nope:exists": {"1"}}, nil},
		{"label is not annotation", map[string][]string{"label:org.example.channel:exists": {"1"}}, nil},
		{"annotation exists", map[string][]string{"annotation:org.example.channel:exists": {"1"}}, sorted(hB, srv)},
		{"annotation equals", map[string][]string{"annotation:org.example.channel": {"beta"}}, sorted(hB)},
		{"annotation is not label", map[string][]string{"annotation:maintainer:exists": {"1"}}, nil},
		{"flatpak's query", map[string][]string{
			"label:org.flatpak.ref:exists": {"1"}, "architecture": {"amd64"}, "os": {"linux"}, "tag": {"latest"},
		}, sorted(hA)},
		{"and", map[string][]string{"repository": {"hello"}, "tag": {"latest", "beta"}, "annotation:org.example.channel:exists": {"1"}}, sorted(hB)},
		{"and nothing", map[string][]string{"repository": {"server"}, "label:org.flatpak.ref:exists": {"1"}}, nil},
		{"equals and exists of one key", map[string][]string{"label:maintainer": {"ops"}, "label:maintainer:exists": {"1"}}, sorted(srv)},
		{"key without values", map[string][]string{"tag": {}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) { checkIndex(t, s, tc.filter, tc.want...) })
	}
}

func testIndexLists(t *testing.T, s IndexStore) {
	labels := map[string]string{"org.flatpak.ref": "app/Multi/x86_64/stable"}
	amd := flatpakImage("multi", "m", "amd64", labels, nil)
	arm := flatpakImage("multi", "m", "arm64", labels, nil)
	plain := flatpakImage("multi", "plain", "amd64", nil, nil)
	put(t, s, amd)
	put(t, s, arm, "arm-only")
	put(t, s, plain)
	// The index references its children and one that was never pushed.
	idx := indexOf("multi", "idx", amd, arm, plain)
	idx.Refs = append(idx.Refs, meta.Ref{Digest: digest.FromString("absent"), Kind: meta.RefManifest,
		MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 9})
	put(t, s, idx, "latest", "stable")
	// An untagged index lists nothing.
	orphan := indexOf("multi", "orphan", plain)
	put(t, s, orphan)
	// A Docker manifest list counts too.
	dl := indexOf("docker", "dl", flatpakImage("docker", "d", "amd64", labels, nil))
	dl.MediaType = "application/vnd.docker.distribution.manifest.list.v2+json"
	dchild := flatpakImage("docker", "d", "amd64", labels, nil)
	put(t, s, dchild)
	put(t, s, dl, "latest")

	inIdx := func(m *meta.Manifest) indexEntry {
		return indexEntry{repo: "multi", digest: m.Digest, list: idx.Digest, tags: "latest,stable"}
	}
	armTagged := indexEntry{repo: "multi", digest: arm.Digest, tags: "arm-only"}
	dEntry := indexEntry{repo: "docker", digest: dchild.Digest, list: dl.Digest, tags: "latest"}
	// Expected order: tagged images first, then list images in list order.
	checkIndex(t, s, map[string][]string{"repository": {"multi"}}, armTagged, inIdx(amd), inIdx(arm), inIdx(plain))
	checkIndex(t, s, map[string][]string{"tag": {"stable"}}, inIdx(amd), inIdx(arm), inIdx(plain))
	checkIndex(t, s, map[string][]string{"tag": {"arm-only"}}, armTagged)
	checkIndex(t, s, map[string][]string{"tag": {"latest"}, "architecture": {"amd64"}}, dEntry, inIdx(amd), inIdx(plain))
	checkIndex(t, s, map[string][]string{"tag": {"latest"}, "label:org.flatpak.ref:exists": {"1"}}, dEntry, inIdx(amd), inIdx(arm))
	checkIndex(t, s, map[string][]string{"tag": {"latest"}, "label:org.flatpak.ref:exists": {"1"}, "architecture": {"arm64"}}, inIdx(arm))
	checkIndex(t, s, map[string][]string{"tag": {"nope"}})

	// The list passed to fn carries its own facts.
	_, err := s.IndexImages(t.Context(), filterOf(t, map[string][]string{"repository": {"multi"}, "tag": {"stable"}}), func(img, list *meta.Manifest, _ []string, _ map[int]digest.Digest) error {
		if list == nil || list.Digest != idx.Digest || list.MediaType != idx.MediaType || list.Repo != "multi" {
			t.Errorf("list = %+v, want %s", list, idx.Digest)
		}
		return nil
	})
	noErr(t, err, "IndexImages")

	// Deleting the index's tags removes its images from the index.
	noErr(t, s.DeleteTag(t.Context(), "multi", "latest"), "DeleteTag")
	noErr(t, s.DeleteTag(t.Context(), "multi", "stable"), "DeleteTag")
	checkIndex(t, s, map[string][]string{"repository": {"multi"}}, armTagged)
}

func testIndexSnapshot(t *testing.T, s IndexStore) {
	put(t, s, image("app", "a", ""), "latest")
	want := generation(t, s)
	got, err := s.IndexImages(t.Context(), meta.IndexFilter{}, func(_, _ *meta.Manifest, _ []string, _ map[int]digest.Digest) error { return nil })
	noErr(t, err, "IndexImages")
	if got != want {
		t.Errorf("IndexImages generation = %d, want IndexGeneration's %d", got, want)
	}
	// An empty result still reports the generation.
	got, err = s.IndexImages(t.Context(), filterOf(t, map[string][]string{"tag": {"none"}}), func(_, _ *meta.Manifest, _ []string, _ map[int]digest.Digest) error { return nil })
	noErr(t, err, "IndexImages")
	if got != want {
		t.Errorf("IndexImages generation (no match) = %d, want %d", got, want)
	}
}

func testIndexBadFilter(t *testing.T, s IndexStore) {
	// The protocol's grammar is parsed once, by meta.ParseIndexFilter:
	// keys it does not know never reach a backend.
	for _, key := range []string{"color", "label:", "annotation::exists", "tag:matches", "labels:x"} {
		if _, err := meta.ParseIndexFilter(map[string][]string{key: {"x"}}); err == nil {
			t.Errorf("filter key %q: no error", key)
		}
	}
}

func testIndexFnError(t *testing.T, s IndexStore) {
	put(t, s, image("app", "a", ""), "latest")
	put(t, s, image("app", "b", ""), "other")
	stop := errors.New("stop")
	calls := 0
	_, err := s.IndexImages(t.Context(), meta.IndexFilter{}, func(_, _ *meta.Manifest, _ []string, _ map[int]digest.Digest) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("IndexImages with a failing fn: err = %v after %d calls, want %v after 1", err, calls, stop)
	}
}

func pngDigest(b []byte) digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, fmt.Sprintf("%x", sha256.Sum256(b)))
}

func icons(t *testing.T, s IndexStore, m *meta.Manifest) map[int]digest.Digest {
	t.Helper()
	key := meta.ManifestKey{Repo: m.Repo, Digest: m.Digest}
	got, err := s.ManifestIcons(t.Context(), key)
	if err != nil {
		t.Fatalf("ManifestIcons(%s@%s): %v", m.Repo, m.Digest, err)
	}
	if got == nil {
		t.Errorf("ManifestIcons(%s@%s) = nil, want a non-nil map", m.Repo, m.Digest)
	}
	for k := range got {
		if k != key {
			t.Errorf("ManifestIcons(%s@%s) has icons of %v", m.Repo, m.Digest, k)
		}
	}
	return got[key]
}

func iconBytes(t *testing.T, s IndexStore, d digest.Digest) ([]byte, bool) {
	t.Helper()
	b, ok, err := s.Icon(t.Context(), d)
	if err != nil {
		t.Fatalf("Icon(%s): %v", d, err)
	}
	return b, ok
}

// testIconsWithManifest: icons given with a new manifest are recorded in
// the transaction that stores it (one write per push); a manifest stored
// again keeps the icons it has.
func testIconsWithManifest(t *testing.T, s IndexStore) {
	ctx := t.Context()
	small, large := []byte("\x89PNG small"), []byte("\x89PNG large")
	ds, dl := pngDigest(small), pngDigest(large)
	a := image("app", "a", "")
	a.Icons = []meta.Icon{{Size: 64, Digest: ds, PNG: small}, {Size: 128, Digest: dl, PNG: large}}
	g := generation(t, s)
	put(t, s, a, "latest")
	if ng := generation(t, s); ng <= g {
		t.Errorf("PutManifest with icons: index generation %d -> %d", g, ng)
	}
	if got := icons(t, s, a); !maps.Equal(got, map[int]digest.Digest{64: ds, 128: dl}) {
		t.Errorf("ManifestIcons after PutManifest with icons = %v", got)
	}
	if b, ok := iconBytes(t, s, ds); !ok || string(b) != string(small) {
		t.Errorf("Icon(64) = %q, %v", b, ok)
	}
	// The same manifest again, with other icons: nothing changes.
	other := []byte("\x89PNG other")
	a.Icons = []meta.Icon{{Size: 64, Digest: pngDigest(other), PNG: other}}
	put(t, s, a, "latest")
	if got := icons(t, s, a); !maps.Equal(got, map[int]digest.Digest{64: ds, 128: dl}) {
		t.Errorf("ManifestIcons after storing the manifest again = %v", got)
	}
	if _, ok := iconBytes(t, s, pngDigest(other)); ok {
		t.Error("an icon given with a manifest already stored was recorded")
	}
	// A manifest refused (a blob not linked) records no icon.
	b := image("app", "b", "", digest.FromString("missing layer"))
	b.Icons = []meta.Icon{{Size: 64, Digest: pngDigest(other), PNG: other}}
	if err := s.PutManifest(ctx, b, "b"); err == nil {
		t.Fatal("PutManifest with an unlinked layer: no error")
	}
	if _, ok := iconBytes(t, s, pngDigest(other)); ok {
		t.Error("a refused manifest's icon was recorded")
	}
}

func testIcons(t *testing.T, s IndexStore) {
	ctx := t.Context()
	a := image("app", "a", "")
	put(t, s, a, "latest")
	key := meta.ManifestKey{Repo: a.Repo, Digest: a.Digest}
	if got := icons(t, s, a); len(got) != 0 {
		t.Errorf("icons before any = %v", got)
	}
	small, large := []byte("\x89PNG small"), []byte("\x89PNG large")
	ds, dl := pngDigest(small), pngDigest(large)
	if _, ok := iconBytes(t, s, ds); ok {
		t.Error("Icon before PutIcon: found")
	}
	g := generation(t, s)
	noErr(t, s.PutIcon(ctx, key, 64, ds, small), "PutIcon 64")
	noErr(t, s.PutIcon(ctx, key, 128, dl, large), "PutIcon 128")
	if ng := generation(t, s); ng <= g {
		t.Errorf("PutIcon: index generation %d -> %d, want it to increase", g, ng)
	}
	g = generation(t, s)
	noErr(t, s.PutIcon(ctx, key, 128, dl, large), "PutIcon 128 again")
	if ng := generation(t, s); ng != g {
		t.Errorf("PutIcon of the icon already shown: index generation %d -> %d, want it unchanged", g, ng)
	}
	if got := icons(t, s, a); !maps.Equal(got, map[int]digest.Digest{64: ds, 128: dl}) {
		t.Errorf("ManifestIcons = %v", got)
	}
	if b, ok := iconBytes(t, s, dl); !ok || string(b) != string(large) {
		t.Errorf("Icon(128) = %q, %v", b, ok)
	}
	// The caller may modify what Icon returned.
	b, _ := iconBytes(t, s, ds)
	b[0] = 'X'
	if b, _ := iconBytes(t, s, ds); string(b) != string(small) {
		t.Errorf("Icon after modifying a returned slice = %q", b)
	}

	// Several manifests at once, unknown ones and repeats included.
	other := image("app", "other", "")
	put(t, s, other, "other")
	kb := meta.ManifestKey{Repo: "app", Digest: other.Digest}
	noErr(t, s.PutIcon(ctx, kb, 64, dl, large), "PutIcon other")
	all, err := s.ManifestIcons(ctx, key, kb, key, meta.ManifestKey{Repo: "nope", Digest: other.Digest})
	noErr(t, err, "ManifestIcons")
	if len(all) != 2 || !maps.Equal(all[key], map[int]digest.Digest{64: ds, 128: dl}) || !maps.Equal(all[kb], map[int]digest.Digest{64: dl}) {
		t.Errorf("ManifestIcons(a, b, a, unknown) = %v", all)
	}
	if none, err := s.ManifestIcons(ctx); err != nil || none == nil || len(none) != 0 {
		t.Errorf("ManifestIcons() = %v, %v; want an empty map", none, err)
	}

	for _, k := range []meta.ManifestKey{
		{Repo: "app", Digest: digest.FromString("absent")},
		{Repo: "nope", Digest: a.Digest},
	} {
		wantErr(t, s.PutIcon(ctx, k, 64, ds, small), meta.ErrManifestNotFound, "PutIcon of "+k.Repo+"@"+string(k.Digest))
	}
	if got := icons(t, s, &meta.Manifest{Repo: "nope", Digest: a.Digest}); len(got) != 0 {
		t.Errorf("ManifestIcons of an unknown manifest = %v", got)
	}
}

func testIconsLifetime(t *testing.T, s IndexStore) {
	ctx := t.Context()
	a, b := image("app", "a", ""), image("other", "b", "")
	put(t, s, a, "latest")
	put(t, s, b, "latest")
	shared, own, newer := []byte("shared png"), []byte("own png"), []byte("newer png")
	dShared, dOwn, dNewer := pngDigest(shared), pngDigest(own), pngDigest(newer)
	ka, kb := meta.ManifestKey{Repo: "app", Digest: a.Digest}, meta.ManifestKey{Repo: "other", Digest: b.Digest}
	noErr(t, s.PutIcon(ctx, ka, 64, dShared, shared), "PutIcon")
	noErr(t, s.PutIcon(ctx, kb, 64, dShared, shared), "PutIcon")
	noErr(t, s.PutIcon(ctx, kb, 128, dOwn, own), "PutIcon")

	// Replacing b's 128 icon drops the one no manifest shows any more.
	noErr(t, s.PutIcon(ctx, kb, 128, dNewer, newer), "PutIcon replace")
	if _, ok := iconBytes(t, s, dOwn); ok {
		t.Error("replaced icon still stored")
	}
	// Deleting a keeps the shared icon (b shows it).
	noErr(t, s.DeleteManifest(ctx, "app", a.Digest), "DeleteManifest a")
	if _, ok := iconBytes(t, s, dShared); !ok {
		t.Error("shared icon gone after deleting one of its manifests")
	}
	// Deleting b drops both.
	noErr(t, s.DeleteManifest(ctx, "other", b.Digest), "DeleteManifest b")
	for _, d := range []digest.Digest{dShared, dNewer} {
		if _, ok := iconBytes(t, s, d); ok {
			t.Errorf("icon %s still stored after its manifests were deleted", d)
		}
	}
	if got := icons(t, s, b); len(got) != 0 {
		t.Errorf("ManifestIcons of a deleted manifest = %v", got)
	}
	// Pushing the manifest again does not bring old icons back.
	put(t, s, b, "latest")
	if got := icons(t, s, b); len(got) != 0 {
		t.Errorf("ManifestIcons after re-push = %v", got)
	}
}

// testIconsInIndex: IndexImages passes each image's icons, for tagged
// images and for the members of tagged indexes.
func testIconsInIndex(t *testing.T, s IndexStore) {
	ctx := t.Context()
	a, b := image("app", "a", ""), image("app", "b", "")
	put(t, s, a, "latest")
	put(t, s, b)
	idx := indexOf("app", "idx", b)
	put(t, s, idx, "multi")
	png := []byte("png")
	d := pngDigest(png)
	noErr(t, s.PutIcon(ctx, meta.ManifestKey{Repo: "app", Digest: a.Digest}, 64, d, png), "PutIcon a")
	noErr(t, s.PutIcon(ctx, meta.ManifestKey{Repo: "app", Digest: b.Digest}, 128, d, png), "PutIcon b")
	got := map[digest.Digest]map[int]digest.Digest{}
	_, err := s.IndexImages(ctx, meta.IndexFilter{}, func(img, _ *meta.Manifest, _ []string, icons map[int]digest.Digest) error {
		if icons == nil {
			t.Errorf("IndexImages: nil icons for %s", img.Digest)
		}
		got[img.Digest] = icons
		return nil
	})
	noErr(t, err, "IndexImages")
	if !maps.Equal(got[a.Digest], map[int]digest.Digest{64: d}) || !maps.Equal(got[b.Digest], map[int]digest.Digest{128: d}) {
		t.Errorf("IndexImages icons = %v", got)
	}
}

// testManifestsWithoutIcons: the manifests whose data: icons were never
// recorded, paged.
func testManifestsWithoutIcons(t *testing.T, s IndexStore) {
	ctx := t.Context()
	mk := func(repo, name string, labels, annotations map[string]string) *meta.Manifest {
		m := image(repo, name, "")
		m.Labels, m.Annotations = labels, annotations
		put(t, s, m)
		return m
	}
	const l64, l128 = "org.freedesktop.appstream.icon-64", "org.freedesktop.appstream.icon-128"
	missing := mk("a", "label", map[string]string{l64: "data:image/png;base64,AAAA", "other": "x"}, nil)
	annotated := mk("b", "annotation", nil, map[string]string{l128: "data:image/png;base64,BBBB"})
	mk("c", "url", map[string]string{l64: "https://example.com/icon.png"}, nil)
	mk("d", "none", map[string]string{"other": "data:x"}, nil)
	recorded := mk("e", "recorded", map[string]string{l64: "data:image/png;base64,CCCC"}, nil)
	png := []byte("png")
	noErr(t, s.PutIcon(ctx, meta.ManifestKey{Repo: "e", Digest: recorded.Digest}, 64, pngDigest(png), png), "PutIcon")

	var walked []meta.Manifest
	var after meta.ManifestKey
	for range 5 {
		page, err := s.ManifestsWithoutIcons(ctx, after, 1)
		noErr(t, err, "ManifestsWithoutIcons")
		if page == nil {
			t.Fatal("ManifestsWithoutIcons = nil, want a non-nil slice")
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 1 {
			t.Fatalf("page of %d with n=1", len(page))
		}
		walked = append(walked, page...)
		after = meta.ManifestKey{Repo: page[0].Repo, Digest: page[0].Digest}
	}
	if len(walked) != 2 || walked[0].Repo != "a" || walked[0].Digest != missing.Digest ||
		walked[1].Repo != "b" || walked[1].Digest != annotated.Digest {
		t.Fatalf("ManifestsWithoutIcons walk = %+v", walked)
	}
	if !maps.Equal(walked[0].Labels, map[string]string{l64: "data:image/png;base64,AAAA"}) || len(walked[0].Annotations) != 0 ||
		!maps.Equal(walked[1].Annotations, map[string]string{l128: "data:image/png;base64,BBBB"}) || walked[1].Labels == nil {
		t.Errorf("ManifestsWithoutIcons labels/annotations = %+v", walked)
	}
}
