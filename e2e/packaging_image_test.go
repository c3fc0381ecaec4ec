package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// imageBuildTimeout bounds building cmd/berth-image and, on a cold cache,
// cross-compiling berth for two platforms (minutes on a busy 2-core box).
const imageBuildTimeout = 20 * time.Minute

var imageTool struct {
	once sync.Once
	path string
	err  error
}

// berthImageTool builds cmd/berth-image once per test binary.
func berthImageTool(t *testing.T) string {
	t.Helper()
	imageTool.once.Do(func() {
		dir, err := os.MkdirTemp("", "berth-image-tool-")
		if err != nil {
			imageTool.err = err
			return
		}
		imageTool.path = filepath.Join(dir, "berth-image")
		cmd := exec.Command("go", "build", "-o", imageTool.path, "./cmd/berth-image")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(cleanEnv(), "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			imageTool.err = errors.New(string(out))
		}
	})
	if imageTool.err != nil {
		t.Fatalf("building cmd/berth-image: %v", imageTool.err)
	}
	return imageTool.path
}

// headInfo is the commit the image is built from: its version, id and
// time (as berth-image reads them from git), and a clean export of its tree.
type headInfo struct {
	version, revision, created string
	src                        string
}

// exportHead exports HEAD with git archive into a temporary directory:
// the image is built from a clean checkout, and builds within the test
// agree even while the working tree changes or a commit lands.
func exportHead(t *testing.T) headInfo {
	t.Helper()
	root := repoRoot(t)
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	var h headInfo
	h.revision = git("rev-parse", "HEAD")
	// No --dirty: what is built is the commit itself.
	h.version = git("describe", "--tags", "--always", "--match", "v[0-9]*", h.revision)
	ct, err := strconv.ParseInt(git("log", "-1", "--format=%ct", h.revision), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	h.created = time.Unix(ct, 0).UTC().Format(time.RFC3339)
	h.src = filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(h.src, 0o755); err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "head.tar")
	git("archive", "--format=tar", "-o", tarPath, h.revision)
	if out, err := exec.Command("tar", "-x", "-f", tarPath, "-C", h.src).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	return h
}

// buildImageLayout runs berth-image on the exported tree into dir. With
// cache, the compiled binaries are kept in <repo>/.tools/cache/berth-image
// under a hash of their sources (the first build after a change
// cross-compiles); without, berth is compiled afresh.
func buildImageLayout(t *testing.T, h headInfo, dir string, cache bool) (ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), imageBuildTimeout)
	defer cancel()
	args := []string{"-C", h.src, "-out", dir, "-version", h.version, "-revision", h.revision, "-created", h.created}
	if cache {
		args = append(args, "-cache", filepath.Join(repoRoot(t), ".tools", "cache", "berth-image"))
	}
	cmd := exec.CommandContext(ctx, berthImageTool(t), args...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("berth-image: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	t.Logf("berth-image in %s: %s%s", time.Since(start).Round(time.Millisecond), stdout.String(), stderr.String())
	f := strings.Fields(stdout.String())
	if len(f) != 3 {
		t.Fatalf("berth-image printed %q, want DIR REF DIGEST", stdout.String())
	}
	return f[1]
}

// layoutBlobs maps every file of an OCI layout's blobs/ to its bytes.
func layoutBlobs(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	root := filepath.Join(dir, "blobs")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func readJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, clip(b, 2000))
	}
}

func blobOf(t *testing.T, blobs map[string][]byte, d ocispec.Descriptor) []byte {
	t.Helper()
	b, ok := blobs[d.Digest.Algorithm().String()+"/"+d.Digest.Encoded()]
	if !ok {
		t.Fatalf("blob %s missing from the layout", d.Digest)
	}
	return b
}

// TestPackagingImage builds Berth's image into an OCI layout, pushes it
// into a running Berth with skopeo, pulls it back, and checks that every
// byte came back, that the image is what docs/install.md promises, and
// that the binary in it runs.
func TestPackagingImage(t *testing.T) {
	tools := newToolRunner(t)
	tools.need(t, "skopeo")
	work := t.TempDir()

	head := exportHead(t)
	built := filepath.Join(work, "built")
	ref := buildImageLayout(t, head, built, true)
	// Reproducible: a second build, compiling berth afresh, gives the same
	// files.
	again := filepath.Join(work, "again")
	if ref2 := buildImageLayout(t, head, again, false); ref2 != ref {
		t.Fatalf("second build tagged %q, first %q", ref2, ref)
	}
	blobs := layoutBlobs(t, built)
	if !reflect.DeepEqual(blobs, layoutBlobs(t, again)) {
		t.Fatalf("two builds from the same sources differ:\n%v\n%v", sortedKeys(blobs), sortedKeys(layoutBlobs(t, again)))
	}
	for _, f := range []string{"index.json", "oci-layout"} {
		a, _ := os.ReadFile(filepath.Join(built, f))
		b, _ := os.ReadFile(filepath.Join(again, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds", f)
		}
	}

	// The layout's index.json names the image index once, by its tag.
	var top ocispec.Index
	raw, err := os.ReadFile(filepath.Join(built, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	readJSON(t, raw, &top)
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("index.json: %s", raw)
	}
	indexDesc := top.Manifests[0]

	// Push into a running Berth and pull back.
	s := startServer(t)
	dest := "docker://" + s.Addr + "/berth-dev/berth:" + ref
	tools.run(t, "skopeo", "copy", "--quiet", "--all", "--dest-tls-verify=false", "oci:"+built+":"+ref, dest)
	pulled := filepath.Join(work, "pulled")
	tools.run(t, "skopeo", "copy", "--quiet", "--all", "--src-tls-verify=false", dest, "oci:"+pulled+":"+ref)

	// Berth serves the index exactly as built.
	resp, err := httpClient().Get("http://" + s.Addr + "/v2/berth-dev/berth/manifests/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(served, blobOf(t, blobs, indexDesc)) {
		t.Errorf("GET manifest %s: %d, %d bytes; want the built index (%d bytes)", ref, resp.StatusCode, len(served), indexDesc.Size)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != indexDesc.Digest.String() {
		t.Errorf("Docker-Content-Digest %s, want %s", got, indexDesc.Digest)
	}

	// Every blob and manifest came back byte-identical, none extra.
	back := layoutBlobs(t, pulled)
	if !reflect.DeepEqual(sortedKeys(back), sortedKeys(blobs)) {
		t.Errorf("pulled blobs %v\nbuilt blobs %v", sortedKeys(back), sortedKeys(blobs))
	}
	for name, b := range blobs {
		if !bytes.Equal(back[name], b) {
			t.Errorf("blob %s came back different", name)
		}
	}

	// What the image says about itself.
	var idx ocispec.Index
	readJSON(t, blobOf(t, back, indexDesc), &idx)
	wantAnn := []string{"org.opencontainers.image.source", "org.opencontainers.image.version",
		"org.opencontainers.image.revision", "org.opencontainers.image.licenses",
		"org.opencontainers.image.created", "org.opencontainers.image.title", "org.opencontainers.image.description"}
	for _, k := range wantAnn {
		if idx.Annotations[k] == "" {
			t.Errorf("index annotation %s missing: %v", k, idx.Annotations)
		}
	}
	version := idx.Annotations["org.opencontainers.image.version"]
	if version != ref {
		t.Errorf("version annotation %q, tag %q", version, ref)
	}
	if rev := idx.Annotations["org.opencontainers.image.revision"]; rev != head.revision || len(rev) != 40 {
		t.Errorf("revision annotation %q, want the commit %s", rev, head.revision)
	}
	if c := idx.Annotations["org.opencontainers.image.created"]; c != head.created {
		t.Errorf("created annotation %q, want the commit time %s", c, head.created)
	}
	binaries := map[string][]byte{}
	var platforms []string
	for _, d := range idx.Manifests {
		if d.Platform == nil {
			t.Fatalf("index entry %s has no platform", d.Digest)
		}
		plat := d.Platform.OS + "/" + d.Platform.Architecture
		platforms = append(platforms, plat)
		var m ocispec.Manifest
		readJSON(t, blobOf(t, back, d), &m)
		if !reflect.DeepEqual(m.Annotations, idx.Annotations) {
			t.Errorf("%s manifest annotations %v, index %v", plat, m.Annotations, idx.Annotations)
		}
		var img ocispec.Image
		readJSON(t, blobOf(t, back, m.Config), &img)
		c := img.Config
		if img.OS != d.Platform.OS || img.Architecture != d.Platform.Architecture ||
			c.User != "65532:65532" ||
			!reflect.DeepEqual(c.Entrypoint, []string{"/usr/bin/berth"}) ||
			!reflect.DeepEqual(c.Cmd, []string{"serve", "--config", "/etc/berth/config.yaml"}) ||
			!reflect.DeepEqual(c.ExposedPorts, map[string]struct{}{"5000/tcp": {}}) ||
			!reflect.DeepEqual(c.Volumes, map[string]struct{}{"/var/lib/berth": {}}) {
			t.Errorf("%s config: %+v", plat, img)
		}
		files := extractLayers(t, back, m.Layers)
		binaries[plat] = files["usr/bin/berth"]
		if plat == "linux/amd64" {
			checkImageFiles(t, files)
		}
	}
	sort.Strings(platforms)
	if !reflect.DeepEqual(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("platforms %v", platforms)
	}

	// Static binaries for their machines: no interpreter, no shared libraries.
	for plat, machine := range map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64} {
		f, err := elf.NewFile(bytes.NewReader(binaries[plat]))
		if err != nil {
			t.Errorf("%s: /usr/bin/berth is not ELF: %v", plat, err)
			continue
		}
		libs, _ := f.ImportedLibraries()
		if f.Machine != machine || f.Section(".interp") != nil || len(libs) > 0 {
			t.Errorf("%s: machine %s, interpreter %v, libraries %v; want a static %s binary", plat, f.Machine, f.Section(".interp") != nil, libs, machine)
		}
		f.Close()
	}

	// The amd64 binary runs here and knows its version.
	bin := filepath.Join(work, "berth-amd64")
	if err := os.WriteFile(bin, binaries["linux/amd64"], 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		t.Logf("$ berth %s\n%s", strings.Join(args, " "), out)
		if err != nil || !strings.Contains(string(out), version) || !strings.Contains(string(out), head.revision) {
			t.Errorf("berth %s: %v, output %q; want the version %q and the commit %s", strings.Join(args, " "), err, out, version, head.revision)
		}
	}
}

// extractLayers applies an image's gzipped tar layers in order and returns
// the regular files (path → bytes), checking the entries' ownership.
func extractLayers(t *testing.T, blobs map[string][]byte, layers []ocispec.Descriptor) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, l := range layers {
		if l.MediaType != ocispec.MediaTypeImageLayerGzip {
			t.Errorf("layer %s: media type %s", l.Digest, l.MediaType)
		}
		zr, err := gzip.NewReader(bytes.NewReader(blobOf(t, blobs, l)))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
			name := strings.TrimSuffix(h.Name, "/")
			switch {
			case name == "var/lib/berth":
				if h.Uid != 65532 || h.Gid != 65532 || h.Typeflag != tar.TypeDir {
					t.Errorf("/var/lib/berth: uid %d gid %d type %c; want berth's directory", h.Uid, h.Gid, h.Typeflag)
				}
			case h.Uid != 0:
				t.Errorf("%s owned by %d; only the data directory is berth's", name, h.Uid)
			}
			if h.Typeflag == tar.TypeReg {
				b, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				files[name] = b
			}
		}
	}
	return files
}

func checkImageFiles(t *testing.T, files map[string][]byte) {
	t.Helper()
	if !strings.Contains(string(files["etc/passwd"]), "\nberth:x:65532:65532:") {
		t.Errorf("/etc/passwd: %q", files["etc/passwd"])
	}
	if !strings.Contains(string(files["etc/group"]), "\nberth:x:65532:") {
		t.Errorf("/etc/group: %q", files["etc/group"])
	}
	cfg := string(files["etc/berth/config.yaml"])
	if !strings.Contains(cfg, "dir: /var/lib/berth") || !strings.Contains(cfg, `addr: ":5000"`) {
		t.Errorf("/etc/berth/config.yaml: %q", cfg)
	}
}
