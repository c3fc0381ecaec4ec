package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-dev/berth/config"
)

var testCreated = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func testSpec() Spec {
	return Spec{
		Binaries: []Binary{
			{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Data: []byte("#!amd64 berth\x00\x01")},
			{Platform: v1.Platform{OS: "linux", Architecture: "arm64"}, Data: []byte("#!arm64 berth\x00\x02")},
		},
		Version:     "v1.2.3",
		Revision:    "0123456789abcdef0123456789abcdef01234567",
		Source:      "https://github.com/berth-dev/berth",
		Licenses:    "Apache-2.0",
		Title:       "Berth",
		Description: "test",
		Created:     testCreated,
		CACerts:     []byte("-----BEGIN CERTIFICATE-----\n"),
	}
}

func writeSpec(t *testing.T, s Spec) (string, v1.Hash) {
	t.Helper()
	idx, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "oci")
	if err := WriteLayout(dir, idx, s.Version); err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return dir, d
}

// treeFiles maps each regular file under dir to its bytes.
func treeFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestBuildIsReproducible(t *testing.T) {
	dirA, dA := writeSpec(t, testSpec())
	dirB, dB := writeSpec(t, testSpec())
	if dA != dB {
		t.Fatalf("same spec, different index digests: %s %s", dA, dB)
	}
	a, b := treeFiles(t, dirA), treeFiles(t, dirB)
	if len(a) < 8 { // oci-layout, index.json, index, 2×(manifest, config, binary layer), base layer
		t.Fatalf("layout has %d files: %v", len(a), keys(a))
	}
	if !reflect.DeepEqual(keys(a), keys(b)) {
		t.Fatalf("file sets differ:\n%v\n%v", keys(a), keys(b))
	}
	for name, data := range a {
		if !bytes.Equal(data, b[name]) {
			t.Errorf("%s differs between two builds", name)
		}
	}
	// The digest follows the inputs: another time or binary is another image.
	later := testSpec()
	later.Created = testCreated.Add(time.Second)
	if _, d := writeSpec(t, later); d == dA {
		t.Error("a different creation time gave the same digest")
	}
	other := testSpec()
	other.Binaries[1].Data = []byte("#!arm64 berth v2")
	if _, d := writeSpec(t, other); d == dA {
		t.Error("a different binary gave the same digest")
	}
}

func keys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestImageLayout(t *testing.T) {
	s := testSpec()
	dir, digest := writeSpec(t, s)
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 || tm.Manifests[0].Digest != digest ||
		tm.Manifests[0].MediaType != types.OCIImageIndex || tm.Manifests[0].Annotations[annRefName] != "v1.2.3" {
		t.Fatalf("index.json should name the image index once, tagged v1.2.3: %+v", tm.Manifests)
	}
	idx, err := top.ImageIndex(digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	wantAnn := map[string]string{
		annSource: s.Source, annVersion: "v1.2.3", annRevision: s.Revision, annLicenses: "Apache-2.0",
		annCreated: "2026-11-30T12:00:00Z", annTitle: "Berth", annDescription: "test",
	}
	raw, err := idx.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("artifactType")) {
		t.Errorf("the index's descriptors carry an artifactType (images have none; skopeo drops it, changing the digest): %s", raw)
	}
	if im.MediaType != types.OCIImageIndex || !reflect.DeepEqual(im.Annotations, wantAnn) {
		t.Errorf("index: media type %s, annotations %v; want %v", im.MediaType, im.Annotations, wantAnn)
	}
	var platforms []string
	baseLayers := map[v1.Hash]bool{}
	for i, desc := range im.Manifests {
		if desc.Platform == nil {
			t.Fatalf("manifest %d has no platform", i)
		}
		platforms = append(platforms, desc.Platform.String())
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON ||
			!reflect.DeepEqual(m.Annotations, wantAnn) || len(m.Layers) != 2 {
			t.Errorf("%s manifest: %+v", desc.Platform, m)
		}
		for _, l := range m.Layers {
			if l.MediaType != types.OCILayer {
				t.Errorf("%s layer media type %s", desc.Platform, l.MediaType)
			}
		}
		baseLayers[m.Layers[0].Digest] = true
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if cf.OS != "linux" || cf.Architecture != desc.Platform.Architecture || !cf.Created.Time.Equal(testCreated) ||
			c.User != "65532:65532" ||
			!reflect.DeepEqual(c.Entrypoint, []string{"/usr/bin/berth"}) ||
			!reflect.DeepEqual(c.Cmd, []string{"serve", "--config", "/etc/berth/config.yaml"}) ||
			!reflect.DeepEqual(c.ExposedPorts, map[string]struct{}{"5000/tcp": {}}) ||
			!reflect.DeepEqual(c.Volumes, map[string]struct{}{"/var/lib/berth": {}}) ||
			!reflect.DeepEqual(c.Labels, wantAnn) {
			t.Errorf("%s config: %+v", desc.Platform, cf)
		}
		if len(cf.RootFS.DiffIDs) != 2 || len(cf.History) != 2 {
			t.Errorf("%s: %d diff ids, %d history entries; want 2 each", desc.Platform, len(cf.RootFS.DiffIDs), len(cf.History))
		}
		files := layerFiles(t, img)
		want := s.Binaries[i].Data
		if got := files["usr/bin/berth"]; got == nil || !bytes.Equal(got.data, want) || got.hdr.Mode != 0o755 || got.hdr.Uid != 0 {
			t.Errorf("%s: /usr/bin/berth wrong: %+v", desc.Platform, got)
		}
	}
	if !reflect.DeepEqual(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("platforms %v", platforms)
	}
	if len(baseLayers) != 1 {
		t.Errorf("the platforms should share one base layer, got %d", len(baseLayers))
	}
}

type tarFile struct {
	hdr  *tar.Header
	data []byte
}

// layerFiles reads every layer of img in order, checking that each is
// sorted and stamped with the fixed time.
func layerFiles(t *testing.T, img v1.Image) map[string]*tarFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*tarFile{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		prev := ""
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			if h.Name <= prev {
				t.Errorf("tar entries out of order: %q after %q", h.Name, prev)
			}
			prev = h.Name
			if !h.ModTime.Equal(testCreated) || h.Uname != "" || h.Gname != "" {
				t.Errorf("%s: mtime %s, owner names %q %q; want %s and none", h.Name, h.ModTime, h.Uname, h.Gname, testCreated)
			}
			b, _ := io.ReadAll(tr)
			files[strings.TrimSuffix(h.Name, "/")] = &tarFile{hdr: h, data: b}
		}
		rc.Close()
	}
	return files
}

func TestBaseLayerContents(t *testing.T) {
	dir, digest := writeSpec(t, testSpec())
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, _ := lp.ImageIndex()
	idx, err := top.ImageIndex(digest)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	files := layerFiles(t, img)
	for _, d := range []string{"etc", "etc/berth", "etc/ssl", "etc/ssl/certs", "usr", "usr/bin", "var", "var/lib"} {
		if f := files[d]; f == nil || f.hdr.Typeflag != tar.TypeDir || f.hdr.Uid != 0 {
			t.Errorf("parent directory %s missing or not root's: %+v", d, f)
		}
	}
	if f := files["var/lib/berth"]; f == nil || f.hdr.Typeflag != tar.TypeDir || f.hdr.Uid != 65532 || f.hdr.Gid != 65532 || f.hdr.Mode != 0o750 {
		t.Errorf("/var/lib/berth should be berth's 0750 directory: %+v", f)
	}
	if f := files["tmp"]; f == nil || f.hdr.Mode != 0o1777 {
		t.Errorf("/tmp should be 1777: %+v", f)
	}
	if f := files["etc/passwd"]; f == nil || !strings.Contains(string(f.data), "\nberth:x:65532:65532:") {
		t.Errorf("/etc/passwd lacks the berth user: %+v", f)
	}
	if f := files["etc/group"]; f == nil || !strings.Contains(string(f.data), "\nberth:x:65532:") {
		t.Errorf("/etc/group lacks the berth group: %+v", f)
	}
	if f := files["etc/ssl/certs/ca-certificates.crt"]; f == nil {
		t.Error("CA bundle missing")
	}
	f := files["etc/berth/config.yaml"]
	if f == nil {
		t.Fatal("/etc/berth/config.yaml missing")
	}
	// The default config is one berth accepts, and says what the image
	// promises: data in the volume, the exposed port.
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, f.data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("the image's config does not load: %v", err)
	}
	if cfg.Storage.Dir != DataDir || cfg.HTTP.Addr != ":5000" {
		t.Errorf("config: storage.dir %q, http.addr %q", cfg.Storage.Dir, cfg.HTTP.Addr)
	}
}

func TestSpecChecks(t *testing.T) {
	for name, mod := range map[string]func(*Spec){
		"no binaries":  func(s *Spec) { s.Binaries = nil },
		"twice":        func(s *Spec) { s.Binaries[1].Platform = s.Binaries[0].Platform },
		"not linux":    func(s *Spec) { s.Binaries[0].Platform.OS = "darwin" },
		"empty binary": func(s *Spec) { s.Binaries[0].Data = nil },
		"no version":   func(s *Spec) { s.Version = "" },
		"no time":      func(s *Spec) { s.Created = time.Time{} },
	} {
		s := testSpec()
		mod(&s)
		if _, err := Build(s); err == nil {
			t.Errorf("%s: Build accepted it", name)
		}
	}
}

func TestLayerTar(t *testing.T) {
	if _, err := layerTar([]entry{{Path: "/a", Data: []byte("x")}, {Path: "/a/b", Data: []byte("y")}}, testCreated); err == nil {
		t.Error("a file under a file was accepted")
	}
	if _, err := layerTar([]entry{{Path: "/a"}, {Path: "a/"}}, testCreated); err == nil {
		t.Error("a path listed twice was accepted")
	}
	if _, err := layerTar([]entry{{Path: "/"}}, testCreated); err == nil {
		t.Error("the root as an entry was accepted")
	}
	// Input order does not matter.
	es := []entry{{Path: "/z/f", Mode: 0o644, Data: []byte("1")}, {Path: "/a/g", Mode: 0o600, Data: []byte("2")}}
	x, err := layerTar(es, testCreated)
	if err != nil {
		t.Fatal(err)
	}
	y, _ := layerTar([]entry{es[1], es[0]}, testCreated)
	if !bytes.Equal(x, y) {
		t.Error("entry order changed the tar")
	}
}

func TestParseEpoch(t *testing.T) {
	if got, err := parseEpoch("1764504000\n"); err != nil || !got.Equal(time.Unix(1764504000, 0)) {
		t.Errorf("parseEpoch: %v %v", got, err)
	}
	for _, bad := range []string{"", "-1", "1.5", "abc", "99999999999999"} {
		if _, err := parseEpoch(bad); err == nil {
			t.Errorf("parseEpoch(%q) accepted", bad)
		}
	}
}

func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]v1.Platform{
		"linux/amd64":  {OS: "linux", Architecture: "amd64"},
		"linux/arm/v7": {OS: "linux", Architecture: "arm", Variant: "v7"},
	} {
		if got, err := parsePlatform(in); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parsePlatform(%q) = %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "linux", "linux/", "/amd64", "linux/amd64/v1/x", "Linux/amd64", "linux/amd 64"} {
		if _, err := parsePlatform(bad); err == nil {
			t.Errorf("parsePlatform(%q) accepted", bad)
		}
	}
}

func FuzzParsePlatform(f *testing.F) {
	for _, s := range []string{"linux/amd64", "linux/arm/v7", "a//b", "linux/arm64/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePlatform(s)
		if err != nil {
			return
		}
		// What it accepts it prints back unchanged.
		if p.String() != s {
			t.Fatalf("parsePlatform(%q) = %q", s, p.String())
		}
	})
}

// TestRunWithBinaries drives the command end to end with given binaries
// (the cross-compile is the e2e test's part).
func TestRunWithBinaries(t *testing.T) {
	dir := t.TempDir()
	amd, arm := filepath.Join(dir, "amd64"), filepath.Join(dir, "arm64")
	os.WriteFile(amd, []byte("amd64 binary"), 0o755)
	os.WriteFile(arm, []byte("arm64 binary"), 0o755)
	out := filepath.Join(dir, "oci")
	var stdout, stderr bytes.Buffer
	args := []string{"-out", out, "-version", "v9.9.9", "-revision", "abc", "-ca-certs", "",
		"-binary", "linux/amd64=" + amd, "-binary", "linux/arm64=" + arm}
	t.Setenv("SOURCE_DATE_EPOCH", "1764504000")
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	fields := strings.Fields(stdout.String())
	if len(fields) != 3 || fields[0] != out || fields[1] != "v9.9.9" || !strings.HasPrefix(fields[2], "sha256:") {
		t.Fatalf("stdout %q", stdout.String())
	}
	lp, err := layout.FromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	top, _ := lp.ImageIndex()
	h, _ := v1.NewHash(fields[2])
	idx, err := top.ImageIndex(h)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if got := im.Annotations[annCreated]; got != time.Unix(1764504000, 0).UTC().Format(time.RFC3339) {
		t.Errorf("created %q does not follow SOURCE_DATE_EPOCH", got)
	}
	if im.Annotations[annLicenses] != defaultLicenses || im.Annotations[annRevision] != "abc" {
		t.Errorf("annotations %v", im.Annotations)
	}
	// Again: same bytes.
	first := treeFiles(t, out)
	if err := run(context.Background(), args, io.Discard, &stderr); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, treeFiles(t, out)) {
		t.Error("a second run wrote different bytes")
	}
	for _, bad := range [][]string{
		{},
		{"-out", out, "-binary", "nonsense"},
		{"-out", out, "-platforms", "linux", "-version", "v", "-revision", "r"},
	} {
		if err := run(context.Background(), bad, io.Discard, io.Discard); err == nil {
			t.Errorf("run %q succeeded", bad)
		}
	}
}

func TestSourceKey(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	target := targetEnv(v1.Platform{OS: "linux", Architecture: "arm64"})
	env := append(os.Environ(), target...)
	ctx := context.Background()
	a, err := sourceKey(ctx, root, env, target, []string{"build"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := sourceKey(ctx, root, env, target, []string{"build"})
	if err != nil || a != b {
		t.Fatalf("key not stable: %s %s %v", a, b, err)
	}
	if c, _ := sourceKey(ctx, root, env, target, []string{"build", "-x"}); c == a {
		t.Error("flags do not change the key")
	}
	amd := targetEnv(v1.Platform{OS: "linux", Architecture: "amd64"})
	if c, _ := sourceKey(ctx, root, append(os.Environ(), amd...), amd, []string{"build"}); c == a {
		t.Error("the target does not change the key")
	}
}

func TestPruneCache(t *testing.T) {
	dir := t.TempDir()
	base := time.Now().Add(-time.Hour)
	for i := 0; i < 5; i++ {
		p := filepath.Join(dir, fmt.Sprintf("k%d", i))
		if err := os.MkdirAll(filepath.Join(p, "linux-amd64"), 0o755); err != nil {
			t.Fatal(err)
		}
		ts := base.Add(time.Duration(i) * time.Minute)
		os.Chtimes(p, ts, ts)
	}
	pruneCache(dir, 2)
	des, _ := os.ReadDir(dir)
	var left []string
	for _, de := range des {
		left = append(left, de.Name())
	}
	if !reflect.DeepEqual(left, []string{"k3", "k4"}) {
		t.Errorf("left %v; want the two most recent", left)
	}
}
