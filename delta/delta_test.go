package delta_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/blob/fs"
	"github.com/berth-dev/berth/delta"
	"github.com/berth-dev/berth/fsck"
	"github.com/berth-dev/berth/gc"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/sqlite"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/tardiff"
)

// env is a real registry (fs blobs, SQLite metadata, the registry's HTTP
// handler) that the tests push Flatpak-like images to.
type env struct {
	t     testing.TB
	dir   string
	blobs *fs.Store
	md    *sqlite.Store
	srv   *httptest.Server
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	blobs, err := fs.New(filepath.Join(dir, "data"), nil)
	if err != nil {
		t.Fatal(err)
	}
	md, err := sqlite.Open(t.Context(), filepath.Join(dir, "meta.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	reg := registry.New(blobs, md, registry.Options{}, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return &env{t: t, dir: dir, blobs: blobs, md: md, srv: srv}
}

func (e *env) manager(opts delta.Options) *delta.Manager {
	if opts.TempDir == "" {
		opts.TempDir = e.t.TempDir()
	}
	if opts.RetireAfter == 0 {
		opts.RetireAfter = -1 // at once
	}
	return delta.New(e.md, e.blobs, opts, slog.New(slog.DiscardHandler))
}

// layer is a tar of files (path -> content), and its gzip blob.
type layer struct {
	tar, gz []byte
}

func makeLayer(t testing.TB, files map[string][]byte, order []string) layer {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, dir := range []string{"files/", "files/share/"} {
		tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1e9, 0)})
	}
	for _, name := range order {
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1e9, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	var gb bytes.Buffer
	zw := gzip.NewWriter(&gb)
	zw.Write(tb.Bytes())
	zw.Close()
	return layer{tar: tb.Bytes(), gz: gb.Bytes()}
}

// bigFiles is an app with one 4 MiB incompressible file and small ones;
// changed flips 64 bytes in the middle of the big file.
func bigFiles(seed uint64, changed bool) (map[string][]byte, []string) {
	r := rand.New(rand.NewPCG(seed, 1))
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	if changed {
		for i := range 64 {
			big[2<<20+i] ^= 0x5a
		}
	}
	files := map[string][]byte{
		"files/share/big.bin": big,
		"files/share/readme":  []byte("hello\n"),
		"metadata":            []byte("[Application]\nname=org.example.Big\n"),
	}
	return files, []string{"metadata", "files/share/readme", "files/share/big.bin"}
}

const bigRef = "app/org.example.Big/x86_64/stable"

// versions are the two layers (v2: 64 bytes of the big file changed) and
// manifest digests twoVersions pushed.
type versions struct {
	l1, l2 layer
	v1, v2 digest.Digest
}

// twoVersions pushes v1 then v2 of the big app under "stable".
func (e *env) twoVersions(seed uint64) versions {
	e.t.Helper()
	f1, order := bigFiles(seed, false)
	f2, _ := bigFiles(seed, true)
	vs := versions{l1: makeLayer(e.t, f1, order), l2: makeLayer(e.t, f2, order)}
	vs.v1 = e.pushImage("org.example.big", "stable", bigRef, vs.l1)
	vs.v2 = e.pushImage("org.example.big", "stable", bigRef, vs.l2)
	return vs
}

// pushImage pushes an image of one layer with the Flatpak ref label under
// tag and returns its manifest digest.
func (e *env) pushImage(repo, tag, ref string, l layer) digest.Digest {
	e.t.Helper()
	cfg := map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Labels": map[string]string{"org.flatpak.ref": ref}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest.FromBytes(l.tar).String()}},
	}
	cb, _ := json.Marshal(cfg)
	e.pushBlob(repo, cb)
	e.pushBlob(repo, l.gz)
	mf := v1.Manifest{
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))},
		Layers:    []v1.Descriptor{{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromBytes(l.gz), Size: int64(len(l.gz))}},
	}
	mf.SchemaVersion = 2
	mb, _ := json.Marshal(mf)
	req, _ := http.NewRequest(http.MethodPut, e.srv.URL+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(mb))
	req.Header.Set("Content-Type", v1.MediaTypeImageManifest)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		e.t.Fatalf("PUT manifest: %s", res.Status)
	}
	// Distinct push times for the versions of a ref.
	time.Sleep(2 * time.Millisecond)
	return digest.FromBytes(mb)
}

func (e *env) pushBlob(repo string, b []byte) {
	e.t.Helper()
	res, err := http.Post(e.srv.URL+"/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), "application/octet-stream", bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		e.t.Fatalf("POST blob: %s", res.Status)
	}
}

// get fetches a path of the registry; it returns the status and body.
func (e *env) get(path string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	req.Header.Set("Accept", v1.MediaTypeImageManifest+", "+v1.MediaTypeImageIndex)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// deltaIndex returns repo's _deltaindex (nil when there is none).
func (e *env) deltaIndex(repo string) *v1.Index {
	e.t.Helper()
	code, b := e.get("/v2/" + repo + "/manifests/_deltaindex")
	if code == http.StatusNotFound {
		return nil
	}
	if code != http.StatusOK {
		e.t.Fatalf("GET _deltaindex: %d %s", code, b)
	}
	var idx v1.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		e.t.Fatal(err)
	}
	return &idx
}

// deltaFor returns the delta manifest _deltaindex lists for target.
func (e *env) deltaFor(repo string, target digest.Digest) *v1.Manifest {
	e.t.Helper()
	m, _ := e.deltaEntry(repo, target)
	return m
}

// deltaEntry returns the delta manifest _deltaindex lists for target, and
// its digest.
func (e *env) deltaEntry(repo string, target digest.Digest) (*v1.Manifest, digest.Digest) {
	e.t.Helper()
	idx := e.deltaIndex(repo)
	if idx == nil {
		return nil, ""
	}
	for _, d := range idx.Manifests {
		if d.Annotations[delta.AnnotationTarget] == target.String() {
			code, b := e.get("/v2/" + repo + "/manifests/" + d.Digest.String())
			if code != http.StatusOK {
				e.t.Fatalf("GET delta manifest %s: %d", d.Digest, code)
			}
			var m v1.Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				e.t.Fatal(err)
			}
			if m.Annotations[delta.AnnotationTarget] != target.String() {
				e.t.Errorf("delta manifest annotated %q, want target %s", m.Annotations[delta.AnnotationTarget], target)
			}
			return &m, d.Digest
		}
	}
	return nil, ""
}

func (e *env) pairs(repo string) []meta.DeltaPair {
	e.t.Helper()
	ps, err := e.md.DeltaPairs(e.t.Context(), repo)
	if err != nil {
		e.t.Fatal(err)
	}
	return ps
}

func runOnce(t *testing.T, m *delta.Manager) {
	t.Helper()
	if err := m.RunOnce(t.Context()); err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
}

// applyTo applies a delta blob to the tar of old and returns the result.
func applyTo(t *testing.T, e *env, deltaBlob digest.Digest, old []byte) []byte {
	t.Helper()
	f, err := e.blobs.Open(t.Context(), deltaBlob)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err := tardiff.TarSource(t.Context(), bytes.NewReader(old), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out bytes.Buffer
	if err := tardiff.Apply(t.Context(), f, src, &out); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return out.Bytes()
}

// TestDeltaPublished: v1 then v2 of a ref under one tag; the cycle makes a
// delta v1 -> v2, publishes a delta manifest and _deltaindex the client
// can use, and the delta rebuilds v2's layer from v1's exactly.
func TestDeltaPublished(t *testing.T) {
	e := newEnv(t)
	f1, order := bigFiles(1, false)
	f2, _ := bigFiles(1, true)
	l1, l2 := makeLayer(t, f1, order), makeLayer(t, f2, order)
	v1d := e.pushImage("org.example.big", "stable", bigRef, l1)
	m := e.manager(delta.Options{})
	runOnce(t, m)
	if e.deltaIndex("org.example.big") != nil {
		t.Fatal("_deltaindex exists with one version")
	}
	v2d := e.pushImage("org.example.big", "stable", bigRef, l2)
	runOnce(t, m)

	dm := e.deltaFor("org.example.big", v2d)
	if dm == nil {
		t.Fatalf("no delta for v2; pairs: %+v", e.pairs("org.example.big"))
	}
	if dm.Config.MediaType != delta.MediaTypeConfig || len(dm.Layers) != 1 {
		t.Fatalf("delta manifest config %q, %d layers", dm.Config.MediaType, len(dm.Layers))
	}
	dl := dm.Layers[0]
	if dl.MediaType != delta.MediaTypeTarDiff ||
		dl.Annotations[delta.AnnotationFrom] != digest.FromBytes(l1.tar).String() ||
		dl.Annotations[delta.AnnotationTo] != digest.FromBytes(l2.tar).String() {
		t.Errorf("delta layer %+v: want tar-diff from v1's DiffID to v2's", dl)
	}
	if dl.Size*20 >= int64(len(l2.gz)) {
		t.Errorf("delta is %d bytes for a %d-byte layer: not under 5%%", dl.Size, len(l2.gz))
	}
	if got := applyTo(t, e, dl.Digest, l1.tar); !bytes.Equal(got, l2.tar) {
		t.Error("the published delta applied to v1's tar does not give v2's tar")
	}
	ps := e.pairs("org.example.big")
	if len(ps) != 1 || ps[0].Source != v1d || ps[0].State != meta.DeltaReady || ps[0].LayerSize != int64(len(l2.gz)) {
		t.Errorf("pairs = %+v", ps)
	}
	// The delta blob, the delta manifest and _deltaindex are ordinary
	// content: the blob is pullable from the repository.
	if code, b := e.get("/v2/org.example.big/blobs/" + dl.Digest.String()); code != http.StatusOK || digest.FromBytes(b) != dl.Digest {
		t.Errorf("GET delta blob: %d", code)
	}
	// A second cycle changes nothing.
	before := e.deltaIndex("org.example.big")
	runOnce(t, m)
	if after := e.deltaIndex("org.example.big"); after == nil || len(after.Manifests) != len(before.Manifests) || after.Manifests[0].Digest != before.Manifests[0].Digest {
		t.Errorf("a cycle with nothing new changed _deltaindex: %+v -> %+v", before, after)
	}

	// v3: deltas from v2 and v1 (Versions 3), one manifest with two layers.
	f3, _ := bigFiles(1, true)
	f3["files/share/readme"] = []byte("hello again\n")
	l3 := makeLayer(t, f3, order)
	v3d := e.pushImage("org.example.big", "stable", bigRef, l3)
	runOnce(t, m)
	dm3 := e.deltaFor("org.example.big", v3d)
	if dm3 == nil || len(dm3.Layers) != 2 {
		t.Fatalf("delta manifest of v3 = %+v, want two layers (from v1 and v2)", dm3)
	}
	for _, l := range dm3.Layers {
		var old []byte
		switch l.Annotations[delta.AnnotationFrom] {
		case digest.FromBytes(l1.tar).String():
			old = l1.tar
		case digest.FromBytes(l2.tar).String():
			old = l2.tar
		default:
			t.Fatalf("delta layer from %q", l.Annotations[delta.AnnotationFrom])
		}
		if got := applyTo(t, e, l.Digest, old); !bytes.Equal(got, l3.tar) {
			t.Errorf("delta from %s does not rebuild v3", l.Annotations[delta.AnnotationFrom])
		}
	}
	if e.deltaFor("org.example.big", v2d) == nil {
		t.Error("v2's delta went from _deltaindex when v3 came (its target still exists)")
	}
}

// corrupting is a Differ that makes a real delta and then damages it.
func corrupting(damage func([]byte) []byte) delta.Differ {
	return func(ctx context.Context, old, new io.Reader, out io.Writer) error {
		var buf bytes.Buffer
		if _, err := tardiff.Diff(ctx, old, new, &buf, tardiff.Options{}); err != nil {
			return err
		}
		_, err := out.Write(damage(buf.Bytes()))
		return err
	}
}

// TestCorruptDeltaNeverPublished: deltas that do not rebuild the target
// layer exactly (a flipped byte, a truncated stream, garbage, a delta made
// against other bytes) are recorded as failed and never published.
func TestCorruptDeltaNeverPublished(t *testing.T) {
	f1, order := bigFiles(2, false)
	f2, _ := bigFiles(2, true)
	// A delta made against the new tree itself: tiny (it copies every
	// file), and applied to v1 it gives v1's bytes back, not v2's.
	otherLayer := makeLayer(t, f2, order)
	cases := map[string]delta.Differ{
		"flipped byte": corrupting(func(b []byte) []byte {
			b = bytes.Clone(b)
			b[len(b)/2] ^= 1
			return b
		}),
		"truncated": corrupting(func(b []byte) []byte { return b[:len(b)-10] }),
		"garbage": func(_ context.Context, old, new io.Reader, out io.Writer) error {
			io.Copy(io.Discard, old)
			io.Copy(io.Discard, new)
			_, err := out.Write([]byte("tardf1\n\x00not zstd at all"))
			return err
		},
		"against other bytes": func(ctx context.Context, old, new io.Reader, out io.Writer) error {
			io.Copy(io.Discard, old)
			_, err := tardiff.Diff(ctx, bytes.NewReader(otherLayer.tar), new, out, tardiff.Options{})
			return err
		},
	}
	for name, differ := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			l1, l2 := makeLayer(t, f1, order), makeLayer(t, f2, order)
			e.pushImage("org.example.big", "stable", bigRef, l1)
			e.pushImage("org.example.big", "stable", bigRef, l2)
			m := e.manager(delta.Options{Differ: differ})
			runOnce(t, m)
			if idx := e.deltaIndex("org.example.big"); idx != nil {
				t.Fatalf("a corrupt delta was published: %+v", idx)
			}
			ps := e.pairs("org.example.big")
			if len(ps) != 1 || ps[0].State != meta.DeltaFailed || ps[0].Blob != "" {
				t.Fatalf("pairs = %+v, want one failed pair without a blob", ps)
			}
			t.Logf("recorded: %s", ps[0].Detail)
			// Nothing of the delta reached the repository.
			tags, _ := e.md.Tags(t.Context(), "org.example.big", "", -1)
			if strings.Contains(strings.Join(tags, ","), delta.Tag) {
				t.Errorf("tags = %v", tags)
			}
			// And it is not retried.
			runOnce(t, m)
			if ps := e.pairs("org.example.big"); ps[0].State != meta.DeltaFailed || ps[0].Attempts != 1 {
				t.Errorf("a failed delta was tried again: %+v", ps)
			}
		})
	}
}

// TestDeltaNotSmallerRejected: a new version with all-new content gets no
// delta (it would not be substantially smaller than the layer).
func TestDeltaNotSmallerRejected(t *testing.T) {
	e := newEnv(t)
	f1, order := bigFiles(4, false)
	f2, _ := bigFiles(5, false)
	e.pushImage("org.example.big", "stable", bigRef, makeLayer(t, f1, order))
	e.pushImage("org.example.big", "stable", bigRef, makeLayer(t, f2, order))
	runOnce(t, e.manager(delta.Options{}))
	if e.deltaIndex("org.example.big") != nil {
		t.Error("a delta as large as the layer was published")
	}
	if ps := e.pairs("org.example.big"); len(ps) != 1 || ps[0].State != meta.DeltaRejected {
		t.Errorf("pairs = %+v, want one rejected", ps)
	}
}

// TestDeltaJobSurvivesRestart: the worker stops in the middle of making a
// delta (its process dies); nothing is published, and a new worker on the
// same stores completes the job: at once when the old leases are released
// (berth serve does so, holding the storage lock), or once the lease ends.
func TestDeltaJobSurvivesRestart(t *testing.T) {
	for _, release := range []bool{true, false} {
		t.Run(fmt.Sprintf("release=%v", release), func(t *testing.T) {
			e := newEnv(t)
			vs := e.twoVersions(6)
			l1, l2 := vs.l1, vs.l2
			v2d := vs.v2

			started := make(chan struct{})
			blocked := func(ctx context.Context, old, new io.Reader, out io.Writer) error {
				// Half a delta written, then the process "dies".
				out.Write([]byte("tardf1\n\x00"))
				close(started)
				<-ctx.Done()
				return ctx.Err()
			}
			tmp := t.TempDir()
			lease := time.Hour
			if !release {
				lease = 300 * time.Millisecond
			}
			first := e.manager(delta.Options{Differ: blocked, Lease: lease, TempDir: tmp})
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { first.Run(ctx); close(done) }()
			<-started
			cancel()
			<-done
			if e.deltaIndex("org.example.big") != nil {
				t.Fatal("something was published by the interrupted job")
			}
			if ps := e.pairs("org.example.big"); len(ps) != 1 || ps[0].State != meta.DeltaPending {
				t.Fatalf("after the interruption, pairs = %+v, want one pending", ps)
			}
			if release {
				if err := e.md.ReleaseDeltaLeases(t.Context()); err != nil {
					t.Fatal(err)
				}
			} else {
				time.Sleep(2 * lease)
			}
			second := e.manager(delta.Options{Lease: lease, TempDir: tmp})
			runOnce(t, second)
			dm := e.deltaFor("org.example.big", v2d)
			if dm == nil {
				t.Fatalf("the job did not complete after the restart: %+v", e.pairs("org.example.big"))
			}
			if got := applyTo(t, e, dm.Layers[0].Digest, l1.tar); !bytes.Equal(got, l2.tar) {
				t.Error("the delta made after the restart does not rebuild v2")
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// TestDeltaGC: deleting the source (and, separately, the target) drops the
// delta from _deltaindex, deletes its delta manifest, and gc reclaims the
// delta blob; while the entry exists, gc keeps it; fsck is clean
// throughout.
func TestDeltaGC(t *testing.T) {
	for _, del := range []string{"source", "target"} {
		t.Run("delete "+del, func(t *testing.T) {
			e := newEnv(t)
			vs := e.twoVersions(7)
			v1d := vs.v1
			v2d := vs.v2
			m := e.manager(delta.Options{})
			runOnce(t, m)
			dm, dmd := e.deltaEntry("org.example.big", v2d)
			if dm == nil {
				t.Fatal("no delta")
			}
			deltaBlob := dm.Layers[0].Digest
			collector := gc.New(e.md, e.blobs, gc.Policy{Grace: 0}, nil)
			if _, err := collector.Run(t.Context(), false); err != nil {
				t.Fatal(err)
			}
			if _, err := e.blobs.Stat(t.Context(), deltaBlob); err != nil {
				t.Fatalf("gc took a published delta blob: %v", err)
			}
			checkFsck(t, e)

			victim := v1d
			if del == "target" {
				victim = v2d
			}
			if err := e.md.DeleteManifest(t.Context(), "org.example.big", victim); err != nil {
				t.Fatal(err)
			}
			runOnce(t, m)
			if idx := e.deltaIndex("org.example.big"); idx != nil {
				t.Errorf("_deltaindex after deleting the %s: %+v", del, idx)
			}
			if ps := e.pairs("org.example.big"); len(ps) != 0 {
				t.Errorf("pairs after deleting the %s: %+v", del, ps)
			}
			if code, _ := e.get("/v2/org.example.big/manifests/" + dmd.String()); code != http.StatusNotFound {
				t.Errorf("the delta manifest is still stored: %d", code)
			}
			if _, err := collector.Run(t.Context(), false); err != nil {
				t.Fatal(err)
			}
			if _, err := e.blobs.Stat(t.Context(), deltaBlob); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("gc kept the delta blob of a dropped delta: %v", err)
			}
			checkFsck(t, e)
		})
	}
}

func checkFsck(t *testing.T, e *env) {
	t.Helper()
	r, err := fsck.New(e.md, e.blobs, nil).Check(t.Context(), fsck.Options{})
	if err != nil {
		t.Fatalf("fsck: %v", err)
	}
	if n := r.Unrepaired(); n != 0 {
		t.Errorf("fsck: %d problems: %+v", n, r.Problems)
	}
}

// TestFsckDeltas: fsck checks what the client follows: a delta manifest
// missing under _deltaindex is damage (the next cycle stores it again),
// an entry whose target is gone is pending collection, and a delta layer
// no verified pair records is reported.
func TestFsckDeltas(t *testing.T) {
	e := newEnv(t)
	vs := e.twoVersions(8)
	v2d := vs.v2
	m := e.manager(delta.Options{})
	runOnce(t, m)
	_, dmd := e.deltaEntry("org.example.big", v2d)
	if dmd == "" {
		t.Fatal("no delta")
	}
	checkFsck(t, e)
	report := func() fsck.Report {
		t.Helper()
		r, err := fsck.New(e.md, e.blobs, nil).Check(t.Context(), fsck.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	has := func(r fsck.Report, k fsck.Kind) bool {
		for _, p := range r.Problems {
			if p.Kind == k {
				return true
			}
		}
		return false
	}

	// The delta manifest goes from under _deltaindex.
	if err := e.md.DeleteManifest(t.Context(), "org.example.big", dmd); err != nil {
		t.Fatal(err)
	}
	if r := report(); !has(r, fsck.DeltaDangling) || r.Unrepaired() == 0 {
		t.Errorf("a missing delta manifest: %+v", r.Problems)
	}
	runOnce(t, m)
	checkFsck(t, e) // stored again

	// Deltas nobody verified.
	if err := e.md.ResetDeltas(t.Context(), "org.example.big", false); err != nil {
		t.Fatal(err)
	}
	if r := report(); !has(r, fsck.DeltaUnverified) {
		t.Errorf("a delta layer without its verified pair: %+v", r.Problems)
	}
	runOnce(t, m) // drops them
	checkFsck(t, e)
	if e.deltaIndex("org.example.big") != nil {
		t.Error("_deltaindex after the deltas were dropped")
	}

	// A target deleted before the worker runs: pending, not damage.
	if err := e.md.ResetDeltas(t.Context(), "org.example.big", true); err != nil {
		t.Fatal(err)
	}
	runOnce(t, m)
	if e.deltaFor("org.example.big", v2d) == nil {
		t.Fatal("no delta after a rebuild")
	}
	if err := e.md.DeleteManifest(t.Context(), "org.example.big", v2d); err != nil {
		t.Fatal(err)
	}
	r := report()
	if !has(r, fsck.DeltaStale) || r.Unrepaired() != 0 {
		t.Errorf("a delta whose target is gone: %+v (unrepaired %d)", r.Problems, r.Unrepaired())
	}
	runOnce(t, m)
	checkFsck(t, e)
	if e.deltaIndex("org.example.big") != nil {
		t.Error("_deltaindex after its only target went")
	}
}

// TestReconcileMakesNothing: Reconcile (what berth gc runs without a
// server) drops the deltas of a deleted source and publishes, but makes
// no delta for a new version.
func TestReconcileMakesNothing(t *testing.T) {
	e := newEnv(t)
	vs := e.twoVersions(9)
	v1 := vs.v1
	v2 := vs.v2
	m := e.manager(delta.Options{})
	runOnce(t, m)
	if e.deltaFor("org.example.big", v2) == nil {
		t.Fatal("no delta")
	}
	f3, order := bigFiles(9, true)
	f3["metadata"] = []byte("[Application]\nname=org.example.Big\n# v3\n")
	e.pushImage("org.example.big", "stable", bigRef, makeLayer(t, f3, order))
	if err := e.md.DeleteManifest(t.Context(), "org.example.big", v1); err != nil {
		t.Fatal(err)
	}
	if err := m.Reconcile(t.Context()); err != nil {
		t.Fatal(err)
	}
	if idx := e.deltaIndex("org.example.big"); idx != nil {
		t.Errorf("_deltaindex after the source went and Reconcile: %+v", idx)
	}
	if ps := e.pairs("org.example.big"); len(ps) != 0 {
		t.Errorf("Reconcile planned or made deltas: %+v", ps)
	}
}

// TestForeignDeltaIndexLeftAlone: a _deltaindex Berth did not make (a
// mirror of another registry's) is never replaced or deleted, and no
// deltas are published beside it.
func TestForeignDeltaIndexLeftAlone(t *testing.T) {
	e := newEnv(t)
	f1, order := bigFiles(10, false)
	f2, _ := bigFiles(10, true)
	e.pushImage("org.example.big", "stable", bigRef, makeLayer(t, f1, order))
	// Someone else's delta index: an index of an ordinary image.
	other := e.pushImage("org.example.big", "other", bigRef+"x", makeLayer(t, f2, order))
	idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d}]}`,
		other, manifestSize(t, e, other))
	req, _ := http.NewRequest(http.MethodPut, e.srv.URL+"/v2/org.example.big/manifests/"+delta.Tag, strings.NewReader(idx))
	req.Header.Set("Content-Type", v1.MediaTypeImageIndex)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("PUT a foreign _deltaindex: %v %v", res.Status, err)
	}
	res.Body.Close()
	e.pushImage("org.example.big", "stable", bigRef, makeLayer(t, f2, order))
	m := e.manager(delta.Options{})
	runOnce(t, m)
	runOnce(t, m)
	got, err := e.md.ResolveTag(t.Context(), "org.example.big", delta.Tag)
	if err != nil || got != digest.FromString(idx) {
		t.Errorf("_deltaindex = %s, %v; want the foreign index %s untouched", got, err, digest.FromString(idx))
	}
	if _, err := e.md.GetManifest(t.Context(), "org.example.big", other); err != nil {
		t.Errorf("the foreign index's child: %v", err)
	}
}

func manifestSize(t *testing.T, e *env, d digest.Digest) int {
	t.Helper()
	m, err := e.md.GetManifest(t.Context(), "org.example.big", d)
	if err != nil {
		t.Fatal(err)
	}
	return len(m.Content)
}

// TestDeltaAbandonedAfterRepeatedDeaths: a pair whose making never ends
// (the worker died each time) is failed after maxAttempts claims instead
// of taking the server down at every start.
func TestDeltaAbandonedAfterRepeatedDeaths(t *testing.T) {
	e := newEnv(t)
	e.twoVersions(11)
	m := e.manager(delta.Options{Differ: func(context.Context, io.Reader, io.Reader, io.Writer) error {
		panic("no delta for this pair")
	}})
	runOnce(t, m) // plans; the panic fails the pair
	ps := e.pairs("org.example.big")
	if len(ps) != 1 || ps[0].State != meta.DeltaFailed || !strings.Contains(ps[0].Detail, "panicked") {
		t.Fatalf("after a panic: %+v", ps)
	}
	// Deaths: the pair is claimed and never finished, again and again.
	if err := e.md.ResetDeltas(t.Context(), "org.example.big", true); err != nil {
		t.Fatal(err)
	}
	plain := e.manager(delta.Options{Differ: func(ctx context.Context, _, _ io.Reader, _ io.Writer) error {
		<-ctx.Done()
		return ctx.Err()
	}})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_ = plain.RunOnce(ctx) // plans nothing with a dead context; plan by hand below
	runPlanOnly(t, e)
	at := time.Now().Add(-10 * time.Hour) // every lease below has ended by now
	for i := range 5 {
		if p, err := e.md.ClaimDelta(t.Context(), fmt.Sprint("dead", i), at.Add(time.Duration(i)*time.Hour), time.Minute); err != nil || p == nil {
			t.Fatalf("claim %d: %+v %v", i, p, err)
		}
	}
	runOnce(t, e.manager(delta.Options{}))
	ps = e.pairs("org.example.big")
	if len(ps) != 1 || ps[0].State != meta.DeltaFailed || !strings.Contains(ps[0].Detail, "abandoned") {
		t.Errorf("after 5 unfinished claims: %+v", ps)
	}
}

// runPlanOnly plans the tagged targets (what a cycle does first) without
// making anything.
func runPlanOnly(t *testing.T, e *env) {
	t.Helper()
	targets, err := e.md.UnplannedDeltaTargets(t.Context(), delta.LabelRef, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		src, err := e.md.EarlierVersions(t.Context(), tg.Repo, tg.Digest, delta.LabelRef, tg.Ref, time.Time{}, 3)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.md.PlanDeltas(t.Context(), tg.Repo, tg.Digest, src); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCompressionBombRejected: a layer whose tar passes MaxTarBytes is
// rejected, not spooled.
func TestCompressionBombRejected(t *testing.T) {
	e := newEnv(t)
	e.twoVersions(12)
	runOnce(t, e.manager(delta.Options{MaxTarBytes: 1 << 20}))
	ps := e.pairs("org.example.big")
	if len(ps) != 1 || ps[0].State != meta.DeltaRejected || !strings.Contains(ps[0].Detail, "over the limit") {
		t.Errorf("pairs = %+v, want one rejected over the limit", ps)
	}
}

// TestLostDeltaBlobMadeAgain: a ready delta whose blob is gone when it
// must be published again is made again, not dropped for good.
func TestLostDeltaBlobMadeAgain(t *testing.T) {
	e := newEnv(t)
	vs := e.twoVersions(14)
	l1, l2 := vs.l1, vs.l2
	v2 := vs.v2
	m := e.manager(delta.Options{})
	runOnce(t, m)
	dm, dmd := e.deltaEntry("org.example.big", v2)
	if dm == nil {
		t.Fatal("no delta")
	}
	// The delta manifest and the blob's bytes go (a crash and gc, say).
	if err := e.md.DeleteManifest(t.Context(), "org.example.big", dmd); err != nil {
		t.Fatal(err)
	}
	if err := e.blobs.Delete(t.Context(), dm.Layers[0].Digest); err != nil {
		t.Fatal(err)
	}
	runOnce(t, m) // publishing finds the blob gone: the pair is made again
	runOnce(t, m)
	dm2 := e.deltaFor("org.example.big", v2)
	if dm2 == nil {
		t.Fatalf("the delta was not made again: %+v", e.pairs("org.example.big"))
	}
	if got := applyTo(t, e, dm2.Layers[0].Digest, l1.tar); !bytes.Equal(got, l2.tar) {
		t.Error("the remade delta does not rebuild v2")
	}
}
