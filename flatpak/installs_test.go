package flatpak

import (
	"context"
	"errors"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// fakeInstallStore records AddInstalls and answers BlobUsers and
// GetManifest from fixed manifests (a unit test of the counter alone).
type fakeInstallStore struct {
	manifests []meta.Manifest
	refs      map[digest.Digest][]digest.Digest // blob → manifests using it
	added     []meta.InstallCount
	fail      error
}

func (f *fakeInstallStore) AddInstalls(_ context.Context, c []meta.InstallCount) error {
	if f.fail != nil {
		return f.fail
	}
	f.added = append(f.added, c...)
	return nil
}

func (f *fakeInstallStore) BlobUsers(_ context.Context, repo string, d digest.Digest, _ int) ([]meta.Manifest, error) {
	var out []meta.Manifest
	for _, md := range f.refs[d] {
		for _, m := range f.manifests {
			if m.Digest == md && m.Repo == repo {
				out = append(out, m)
			}
		}
	}
	return out, nil
}

func (f *fakeInstallStore) GetManifest(_ context.Context, repo string, d digest.Digest) (*meta.Manifest, error) {
	for _, m := range f.manifests {
		if m.Digest == d && m.Repo == repo {
			return &m, nil
		}
	}
	return nil, meta.ErrManifestNotFound
}

const testRef = "app/org.example.App/x86_64/stable"

type installFixture struct {
	store                *fakeInstallStore
	c                    *InstallCounter
	now                  time.Time
	v1, v2, dm           digest.Digest
	cfg1, layer1, layer2 digest.Digest
	deltaBlob            digest.Digest
	metrics              map[string]int64
}

func newInstallFixture(t *testing.T) *installFixture {
	f := &installFixture{now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC), metrics: map[string]int64{}}
	f.cfg1, f.layer1, f.layer2 = digest.FromString("cfg1"), digest.FromString("layer1"), digest.FromString("layer2")
	f.deltaBlob = digest.FromString("delta")
	f.v1, f.v2, f.dm = digest.FromString("v1"), digest.FromString("v2"), digest.FromString("dm")
	labels := map[string]string{LabelRef: testRef}
	f.store = &fakeInstallStore{
		manifests: []meta.Manifest{
			{Repo: "app", Digest: f.v1, Config: f.cfg1, Labels: labels},
			{Repo: "app", Digest: f.v2, Config: digest.FromString("cfg2"), Labels: labels},
			{Repo: "app", Digest: f.dm, Config: digest.FromString("{}"), ArtifactType: deltaConfigType,
				Annotations: map[string]string{deltaTargetAnnotation: f.v2.String()}},
		},
		refs: map[digest.Digest][]digest.Digest{
			f.cfg1: {f.v1}, f.layer1: {f.v1}, f.layer2: {f.v2}, f.deltaBlob: {f.dm},
		},
	}
	f.c = NewInstallCounter(f.store, func(kind, arch string, n int64) { f.metrics[kind+"/"+arch] += n }, nil)
	f.c.now = func() time.Time { return f.now }
	return f
}

func (f *installFixture) get(path, ua, client string, status int, hdr ...string) {
	r := httptest.NewRequest("GET", path, nil)
	r.Header.Set("User-Agent", ua)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	f.c.Observe(r, status, client)
}

func (f *installFixture) flush(t *testing.T) map[string]int64 {
	t.Helper()
	f.store.added = nil
	if err := f.c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, a := range f.store.added {
		if a.Ref != testRef || a.Repo != "app" || a.Day != f.now.Unix()/86400 {
			t.Errorf("count %+v", a)
		}
		v := "v1"
		if a.Version == f.v2 {
			v = "v2"
		}
		got[v+"/"+a.Kind] += a.Count
	}
	return got
}

func wantCounts(t *testing.T, got, want map[string]int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("counts %v, want %v", got, want)
		return
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("counts %v, want %v", got, want)
			return
		}
	}
}

func TestInstallCounter(t *testing.T) {
	const ua = "Flatpak 1.14.10"
	f := newInstallFixture(t)
	blob := func(d digest.Digest) string { return "/v2/app/blobs/" + d.String() }

	// Two clients install v1: the config is not counted, the layer is.
	for _, client := range []string{"10.0.0.1", "10.0.0.2"} {
		f.get(blob(f.cfg1), ua, client, 200)
		f.get(blob(f.layer1), ua, client, 200)
	}
	// Not counted: another user agent, a HEAD-like failure, a range
	// continuation, a manifest, an unknown blob, a bad path.
	f.get(blob(f.layer1), "containers/5.0 (skopeo)", "10.0.0.3", 200)
	f.get(blob(f.layer1), ua, "10.0.0.3", 404)
	f.get(blob(f.layer1), ua, "10.0.0.3", 206, "Range", "bytes=1000-")
	f.get("/v2/app/manifests/"+f.v1.String(), ua, "10.0.0.3", 200)
	f.get(blob(digest.FromString("unknown")), ua, "10.0.0.3", 200)
	f.get("/v2/app/blobs/not-a-digest", ua, "10.0.0.3", 200)
	// A download resumed from byte 0 counts.
	f.get(blob(f.layer1), ua, "10.0.0.4", 206, "Range", "bytes=0-")
	wantCounts(t, f.flush(t), map[string]int64{"v1/install": 3})

	// Client 1 updates: it looks for a delta (404), then downloads v2's
	// layer: an update. The mark is used up: its next download is an
	// install.
	f.get("/v2/app/manifests/_deltaindex", ua, "10.0.0.1", 404)
	f.get(blob(f.layer2), ua, "10.0.0.1", 200)
	f.get(blob(f.layer2), ua, "10.0.0.1", 200)
	// Client 2 updates by delta: the delta blob counts for v2.
	f.get("/v2/app/manifests/_deltaindex", ua, "10.0.0.2", 200)
	f.get(blob(f.deltaBlob), ua, "10.0.0.2", 200)
	// Client 5's mark is older than the window: an install.
	f.get("/v2/app/manifests/_deltaindex", ua, "10.0.0.5", 200)
	f.now = f.now.Add(11 * time.Minute)
	f.get(blob(f.layer2), ua, "10.0.0.5", 200)
	wantCounts(t, f.flush(t), map[string]int64{"v2/update": 2, "v2/install": 2})
	if f.metrics["install/x86_64"] != 5 || f.metrics["update/x86_64"] != 2 {
		t.Errorf("metrics %v", f.metrics)
	}

	// A failed write keeps the counts for the next flush.
	f.get(blob(f.layer1), ua, "10.0.0.6", 200)
	f.store.fail = errors.New("disk full")
	if err := f.c.Flush(context.Background()); err == nil {
		t.Fatal("Flush with a failing store: no error")
	}
	f.store.fail = nil
	wantCounts(t, f.flush(t), map[string]int64{"v1/install": 1})
	wantCounts(t, f.flush(t), map[string]int64{})
}

// TestInstallCounterBounded: memory is bounded however many distinct
// downloads and clients there are between flushes.
func TestInstallCounterBounded(t *testing.T) {
	f := newInstallFixture(t)
	for i := range maxPendingCounts + 10 {
		f.get("/v2/app/blobs/"+digest.FromString(strconv.Itoa(i)).String(), "Flatpak 1.14.10", "c", 200)
	}
	for i := range maxUpdateMarks + 10 {
		f.get("/v2/r"+string(rune('a'+i%26))+"/manifests/_deltaindex", "Flatpak", "client-"+strconv.Itoa(i), 404)
	}
	f.c.mu.Lock()
	pending, marks, dropped := len(f.c.pending), len(f.c.marks), f.c.dropped
	f.c.mu.Unlock()
	if pending > maxPendingCounts || marks > maxUpdateMarks || dropped == 0 {
		t.Errorf("pending %d (max %d), marks %d (max %d), dropped %d", pending, maxPendingCounts, marks, maxUpdateMarks, dropped)
	}
}

func TestSplitV2(t *testing.T) {
	for p, want := range map[string][3]string{
		"/v2/app/blobs/sha256:x":          {"app", "blobs", "sha256:x"},
		"/v2/a/b/c/manifests/_deltaindex": {"a/b/c", "manifests", "_deltaindex"},
		"/v2/blobs/x":                     {},
		"/v2/app/tags/list":               {},
		"/index/static":                   {},
	} {
		repo, kind, ref, ok := splitV2(p)
		if got := [3]string{repo, kind, ref}; got != want || ok != (want[0] != "") {
			t.Errorf("splitV2(%q) = %v %v, want %v", p, got, ok, want)
		}
	}
}

// TestInstallCountedOnce: a layer two images share (a rebuild with new
// labels, one build under two branches) counts one install, of the
// image the store lists first (the newest), not one of each.
func TestInstallCountedOnce(t *testing.T) {
	f := newInstallFixture(t)
	f.store.refs[f.layer1] = []digest.Digest{f.v2, f.v1}
	f.get("/v2/app/blobs/"+f.layer1.String(), "Flatpak 1.14.10", "10.0.0.1", 200)
	wantCounts(t, f.flush(t), map[string]int64{"v2/install": 1})
}
