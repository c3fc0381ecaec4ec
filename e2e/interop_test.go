package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// image is one single-platform image the fixture pushed with crane.
type image struct {
	Repo, Tag string
	Platform  string // os/arch
	Digest    digest.Digest
	Manifest  []byte
	Config    v1.Descriptor
	Layers    []v1.Descriptor
	DiffIDs   []digest.Digest
	Files     map[string][]byte
}

// interop is the state shared by TestInterop's subtests: one berth, and
// the images pushed to it at the start.
type interop struct {
	addr  string
	tools *toolRunner
	rc    *registryClient

	amd64, arm64 image
	index        struct {
		Repo, Tag string
		Digest    digest.Digest
		Manifest  []byte
	}
}

// ref is HOST/repo:tag or HOST/repo@digest.
func (x *interop) ref(repo, tagOrDigest string) string {
	if strings.Contains(tagOrDigest, ":") {
		return x.addr + "/" + repo + "@" + tagOrDigest
	}
	return x.addr + "/" + repo + ":" + tagOrDigest
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInterop drives one berth with real clients. The images are built
// offline by crane from layer tarballs written here; every pulled blob is
// checked against its descriptor, and file contents against what was put in.
func TestInterop(t *testing.T) {
	addr, _ := startBerth(t)
	runInterop(t, addr)
}

// runInterop runs the real clients (crane, skopeo, oras, regctl, podman)
// against the registry at addr, one subtest each.
func runInterop(t *testing.T, addr string) {
	t.Helper()
	tools := newToolRunner(t)
	tools.need(t, "crane")
	x := &interop{addr: addr, tools: tools, rc: newRegistryClient(addr)}

	work := t.TempDir()
	x.amd64 = x.pushImage(t, work, "interop/app", "amd64", "linux/amd64", map[string][]byte{
		"etc/berth/hello.txt": []byte("hello from amd64\n"),
		"data/random.bin":     randomBytes(t, 2<<20), // big enough for chunked/streamed uploads
	})
	x.arm64 = x.pushImage(t, work, "interop/app", "arm64", "linux/arm64", map[string][]byte{
		"etc/berth/hello.txt": []byte("hello from arm64\n"),
		"data/other.bin":      randomBytes(t, 300<<10),
	})
	x.pushIndex(t, "interop/app", "multi")

	t.Run("crane", x.testCrane)
	t.Run("skopeo", x.testSkopeo)
	t.Run("skopeo-copy-all", x.testSkopeoCopyAll)
	t.Run("oras", x.testOras)
	t.Run("regctl", x.testRegctl)
	t.Run("podman", x.testPodman)
}

// pushImage builds a one-layer OCI image with crane from a tarball of files,
// sets its platform, pushes it as repo:tag, and reads back what the registry
// holds.
func (x *interop) pushImage(t *testing.T, work, repo, tag, platform string, files map[string][]byte) image {
	t.Helper()
	tarPath := writeLayerTar(t, work, tag+".tar", files)
	build := "build-" + tag
	x.tools.run(t, "crane", "append", "--insecure", "--oci-empty-base", "-f", tarPath, "-t", x.ref(repo, build))
	x.tools.run(t, "crane", "mutate", "--insecure", x.ref(repo, build), "--set-platform", platform, "-t", x.ref(repo, tag))

	img := image{Repo: repo, Tag: tag, Platform: platform, Files: files}
	img.Manifest = x.tools.run(t, "crane", "manifest", "--insecure", x.ref(repo, tag)).Stdout
	img.Digest = digest.Digest(strings.TrimSpace(string(x.tools.run(t, "crane", "digest", "--insecure", x.ref(repo, tag)).Stdout)))
	if got := digest.FromBytes(img.Manifest); got != img.Digest {
		t.Fatalf("%s:%s: manifest bytes hash to %s, crane digest (Docker-Content-Digest) says %s", repo, tag, got, img.Digest)
	}
	m := parseManifest(t, img.Manifest)
	if m.MediaType != v1.MediaTypeImageManifest || m.Config == nil || len(m.Layers) != 1 {
		t.Fatalf("%s:%s: unexpected manifest:\n%s", repo, tag, img.Manifest)
	}
	img.Config, img.Layers = *m.Config, m.Layers

	cfgBytes := x.tools.run(t, "crane", "config", "--insecure", x.ref(repo, tag)).Stdout
	verifyBytes(t, "config", img.Config, cfgBytes)
	var cfg v1.Image
	if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
		t.Fatal(err)
	}
	if got := cfg.OS + "/" + cfg.Architecture; got != platform {
		t.Fatalf("%s:%s: config platform %s, want %s", repo, tag, got, platform)
	}
	img.DiffIDs = cfg.RootFS.DiffIDs
	tarBytes, err := os.ReadFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := digest.FromBytes(tarBytes); len(img.DiffIDs) != 1 || img.DiffIDs[0] != want {
		t.Fatalf("%s:%s: diff_ids %v, want [%s]", repo, tag, img.DiffIDs, want)
	}
	layer := x.tools.run(t, "crane", "blob", "--insecure", x.ref(repo, string(img.Layers[0].Digest))).Stdout
	verifyBytes(t, "layer", img.Layers[0], layer)
	assertFiles(t, "pushed layer", readTar(t, img.Layers[0].MediaType, bytes.NewReader(layer)), files)
	return img
}

// pushIndex makes a two-platform index of the amd64 and arm64 images.
func (x *interop) pushIndex(t *testing.T, repo, tag string) {
	t.Helper()
	x.tools.run(t, "crane", "index", "append", "--insecure",
		"-m", x.ref(x.amd64.Repo, string(x.amd64.Digest)),
		"-m", x.ref(x.arm64.Repo, string(x.arm64.Digest)),
		"-t", x.ref(repo, tag))
	x.index.Repo, x.index.Tag = repo, tag
	x.index.Manifest = x.tools.run(t, "crane", "manifest", "--insecure", x.ref(repo, tag)).Stdout
	x.index.Digest = digest.FromBytes(x.index.Manifest)
	got := childPlatforms(t, x.index.Manifest)
	want := map[digest.Digest]string{x.amd64.Digest: "linux/amd64", x.arm64.Digest: "linux/arm64"}
	if !mapsEqual(got, want) {
		t.Fatalf("index children %v, want %v\n%s", got, want, x.index.Manifest)
	}
}

// childPlatforms maps an index's children to their os/arch.
func childPlatforms(t testing.TB, index []byte) map[digest.Digest]string {
	t.Helper()
	m := parseManifest(t, index)
	if !isIndex(m.MediaType) {
		t.Fatalf("not an index (%s):\n%s", m.MediaType, index)
	}
	out := map[digest.Digest]string{}
	for _, d := range m.Manifests {
		p := ""
		if d.Platform != nil {
			p = d.Platform.OS + "/" + d.Platform.Architecture
		}
		out[d.Digest] = p
	}
	return out
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func lines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

func assertTags(t testing.TB, what string, got []string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if want == nil {
		want = []string{}
	}
	if got == nil {
		got = []string{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: tags %q, want %q", what, got, want)
	}
}

// assertNotFound checks a failed client command's output says the thing is
// not there (404 / *_UNKNOWN), not some other failure.
func assertNotFound(t testing.TB, what, out string) {
	t.Helper()
	if !regexp.MustCompile(`(?i)MANIFEST_UNKNOWN|NAME_UNKNOWN|BLOB_UNKNOWN|manifest unknown|name unknown|blob unknown|404|not found`).MatchString(out) {
		t.Errorf("%s failed, but not with a not-found error:\n%s", what, out)
	}
}

// blobInRepo GETs a blob through a repository and checks its bytes.
func (x *interop) blobInRepo(t testing.TB, repo string, d v1.Descriptor) []byte {
	t.Helper()
	resp, b := x.rc.do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+string(d.Digest), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET blob %s in %s: %s", d.Digest, repo, resp.Status)
	}
	verifyBytes(t, "blob in "+repo, d, b)
	return b
}

// assertImageIn checks that repo holds img byte for byte: the manifest by
// digest, and every blob through that repository.
func (x *interop) assertImageIn(t testing.TB, repo string, img image) {
	t.Helper()
	b, _ := x.rc.manifest(t, repo, string(img.Digest))
	if !bytes.Equal(b, img.Manifest) {
		t.Errorf("%s@%s: manifest bytes differ from the source", repo, img.Digest)
	}
	x.blobInRepo(t, repo, img.Config)
	for _, l := range img.Layers {
		x.blobInRepo(t, repo, l)
	}
}

func (x *interop) testCrane(t *testing.T) {
	src := x.ref(x.amd64.Repo, x.amd64.Tag)

	// pull to an OCI layout: every blob verified, files as built.
	dir := filepath.Join(t.TempDir(), "layout")
	x.tools.run(t, "crane", "pull", "--insecure", "--format", "oci", src, dir)
	l := verifyLayout(t, dir)
	if l.Blobs != 3 {
		t.Errorf("pulled layout has %d blobs, want 3 (manifest, config, layer)", l.Blobs)
	}
	files, ok := l.Files[x.amd64.Digest]
	if !ok {
		t.Fatalf("pulled layout lacks manifest %s: %+v", x.amd64.Digest, l.Index.Manifests)
	}
	assertFiles(t, "crane pull", files, x.amd64.Files)

	// push the layout to a new repository: same digest.
	x.tools.run(t, "crane", "push", "--insecure", dir, x.ref("interop/crane/pushed", "v1"))
	if got := strings.TrimSpace(string(x.tools.run(t, "crane", "digest", "--insecure", x.ref("interop/crane/pushed", "v1")).Stdout)); got != string(x.amd64.Digest) {
		t.Errorf("crane push: digest %s, want %s", got, x.amd64.Digest)
	}
	x.assertImageIn(t, "interop/crane/pushed", x.amd64)

	// copy the index: same bytes, children and blobs present in the target.
	const dst = "interop/crane/copy"
	x.tools.run(t, "crane", "copy", "--insecure", x.ref(x.index.Repo, x.index.Tag), x.ref(dst, "multi"))
	got, _ := x.rc.manifest(t, dst, "multi")
	if !bytes.Equal(got, x.index.Manifest) {
		t.Errorf("crane copy: index bytes differ:\n%s\nwant\n%s", got, x.index.Manifest)
	}
	x.assertImageIn(t, dst, x.amd64)
	x.assertImageIn(t, dst, x.arm64)

	x.tools.run(t, "crane", "tag", "--insecure", x.ref(dst, "multi"), "extra")
	assertTags(t, "crane ls after tag", lines(x.tools.run(t, "crane", "ls", "--insecure", x.addr+"/"+dst).Stdout), "multi", "extra")
	assertTags(t, "crane ls "+x.amd64.Repo, lines(x.tools.run(t, "crane", "ls", "--insecure", x.addr+"/"+x.amd64.Repo).Stdout),
		"build-amd64", "build-arm64", "amd64", "arm64", "multi")

	// delete the index by digest: it and both tags on it are gone; the
	// children, separate manifests, stay.
	x.tools.run(t, "crane", "delete", "--insecure", x.ref(dst, string(x.index.Digest)))
	out := x.tools.mustFail(t, "crane", "manifest", "--insecure", x.ref(dst, string(x.index.Digest)))
	assertNotFound(t, "crane manifest of the deleted index", out)
	out = x.tools.mustFail(t, "crane", "manifest", "--insecure", x.ref(dst, "extra"))
	assertNotFound(t, "crane manifest of a tag on the deleted index", out)
	out = x.tools.mustFail(t, "crane", "pull", "--insecure", "--format", "oci", x.ref(dst, string(x.index.Digest)), filepath.Join(t.TempDir(), "gone"))
	assertNotFound(t, "crane pull of the deleted index", out)
	assertTags(t, "crane ls after delete", lines(x.tools.run(t, "crane", "ls", "--insecure", x.addr+"/"+dst).Stdout))
	x.assertImageIn(t, dst, x.amd64)

	// delete a single image by digest: its tag goes with it, and the same
	// image in the source repository is untouched.
	x.tools.run(t, "crane", "delete", "--insecure", x.ref("interop/crane/pushed", string(x.amd64.Digest)))
	out = x.tools.mustFail(t, "crane", "manifest", "--insecure", x.ref("interop/crane/pushed", "v1"))
	assertNotFound(t, "crane manifest of the deleted image's tag", out)
	x.assertImageIn(t, x.amd64.Repo, x.amd64)
}

func (x *interop) testSkopeo(t *testing.T) {
	x.tools.need(t, "skopeo")
	base := t.TempDir()
	src := "docker://" + x.ref(x.amd64.Repo, x.amd64.Tag)

	// registry → OCI layout.
	x.tools.run(t, "skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", src, "oci:"+filepath.Join(base, "layout")+":v1")
	l := verifyLayout(t, filepath.Join(base, "layout"))
	if len(l.Index.Manifests) != 1 || l.Index.Manifests[0].Digest != x.amd64.Digest {
		t.Fatalf("skopeo layout index.json: %+v, want manifest %s", l.Index.Manifests, x.amd64.Digest)
	}
	assertFiles(t, "skopeo copy to oci:", l.Files[x.amd64.Digest], x.amd64.Files)

	// OCI layout → registry: unchanged digest.
	const back = "interop/skopeo/back"
	x.tools.run(t, "skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false", "oci:"+filepath.Join(base, "layout")+":v1", "docker://"+x.ref(back, "v1"))
	x.assertImageIn(t, back, x.amd64)

	// inspect: raw bytes equal crane's, and the summary agrees.
	raw := x.tools.run(t, "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+x.ref(back, "v1")).Stdout
	craneRaw := x.tools.run(t, "crane", "manifest", "--insecure", x.ref(back, "v1")).Stdout
	if !bytes.Equal(raw, craneRaw) || !bytes.Equal(raw, x.amd64.Manifest) {
		t.Errorf("skopeo inspect --raw and crane manifest disagree:\n%s\n%s", raw, craneRaw)
	}
	var info struct {
		Digest       digest.Digest
		RepoTags     []string
		Architecture string
		Os           string
		Layers       []digest.Digest
	}
	if err := json.Unmarshal(x.tools.run(t, "skopeo", "inspect", "--tls-verify=false", "docker://"+x.ref(back, "v1")).Stdout, &info); err != nil {
		t.Fatal(err)
	}
	if info.Digest != x.amd64.Digest || info.Os+"/"+info.Architecture != "linux/amd64" ||
		len(info.Layers) != 1 || info.Layers[0] != x.amd64.Layers[0].Digest {
		t.Errorf("skopeo inspect: %+v, want digest %s, linux/amd64, layers [%s]", info, x.amd64.Digest, x.amd64.Layers[0].Digest)
	}
	assertTags(t, "skopeo inspect RepoTags", info.RepoTags, "v1")

	var tags struct{ Tags []string }
	if err := json.Unmarshal(x.tools.run(t, "skopeo", "list-tags", "--tls-verify=false", "docker://"+x.addr+"/"+back).Stdout, &tags); err != nil {
		t.Fatal(err)
	}
	assertTags(t, "skopeo list-tags", tags.Tags, "v1")

	// delete (skopeo resolves the tag and deletes by digest).
	x.tools.run(t, "skopeo", "delete", "--tls-verify=false", "docker://"+x.ref(back, "v1"))
	out := x.tools.mustFail(t, "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+x.ref(back, "v1"))
	assertNotFound(t, "skopeo inspect after delete", out)
	out = x.tools.mustFail(t, "skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "docker://"+x.ref(back, string(x.amd64.Digest)), "oci:"+filepath.Join(base, "gone")+":v1")
	assertNotFound(t, "skopeo copy of the deleted digest", out)
}

var mountPost = regexp.MustCompile(`POST \S+/blobs/uploads/\?\S*mount=(sha256(?::|%3A)[0-9a-f]{64})`)

func (x *interop) testSkopeoCopyAll(t *testing.T) {
	x.tools.need(t, "skopeo")
	base := t.TempDir()
	src := "docker://" + x.ref(x.index.Repo, x.index.Tag)

	// the whole index into a layout: 1 index + 2 × (manifest, config, layer).
	x.tools.run(t, "skopeo", "--insecure-policy", "copy", "--all", "--src-tls-verify=false", src, "oci:"+filepath.Join(base, "multi")+":m")
	l := verifyLayout(t, filepath.Join(base, "multi"))
	if l.Blobs != 7 {
		t.Errorf("skopeo copy --all layout has %d blobs, want 7", l.Blobs)
	}
	assertFiles(t, "skopeo copy --all amd64", l.Files[x.amd64.Digest], x.amd64.Files)
	assertFiles(t, "skopeo copy --all arm64", l.Files[x.arm64.Digest], x.arm64.Files)

	// registry → registry, another repository: the blobs exist on the
	// server already, so skopeo mounts them from the source repository.
	const dst = "interop/skopeo/multi"
	res := x.tools.run(t, "skopeo", "--debug", "--insecure-policy", "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false", src, "docker://"+x.ref(dst, "latest"))
	idx, _ := x.rc.manifest(t, dst, "latest")
	// skopeo 1.9 re-serialises the index (it drops artifactType from the
	// descriptors crane wrote), so compare the children, not the bytes.
	if got, want := childPlatforms(t, idx), childPlatforms(t, x.index.Manifest); !mapsEqual(got, want) {
		t.Errorf("copied index children %v, want %v", got, want)
	}
	x.assertImageIn(t, dst, x.amd64)
	x.assertImageIn(t, dst, x.arm64)

	var mounted []string
	for _, m := range mountPost.FindAllStringSubmatch(string(res.Stderr), -1) {
		mounted = append(mounted, strings.ReplaceAll(m[1], "%3A", ":"))
	}
	if len(mounted) == 0 {
		t.Errorf("skopeo never tried a cross-repository mount (POST ...?mount=); its debug log:\n%s", clip(res.Stderr, 8000))
	}
	for _, d := range mounted {
		// a mount answered 201 needs no upload; a 202 would be followed by
		// a PUT ...?digest=d of the uploaded bytes.
		if regexp.MustCompile(`PUT \S+digest=` + regexp.QuoteMeta(strings.ReplaceAll(d, ":", "%3A"))).MatchString(string(res.Stderr)) {
			t.Errorf("skopeo uploaded %s after trying to mount it: the mount did not succeed", d)
		}
	}
	t.Logf("skopeo mounted %d blobs: %v", len(mounted), mounted)

	// the mount request itself, as the spec describes it.
	layer := x.amd64.Layers[0]
	resp, body := x.rc.do(t, http.MethodPost, "/v2/interop/mount/target/blobs/uploads/?mount="+string(layer.Digest)+"&from="+x.amd64.Repo, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("mount from %s: %s, want 201 Created\n%s", x.amd64.Repo, resp.Status, body)
	} else {
		if resp.Header.Get("Location") == "" {
			t.Errorf("mount: 201 without Location")
		}
		if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != string(layer.Digest) {
			t.Errorf("mount: Docker-Content-Digest %s, want %s", h, layer.Digest)
		}
		x.blobInRepo(t, "interop/mount/target", layer)
	}
	// a blob is readable only from repositories it was pushed or mounted to.
	resp, _ = x.rc.do(t, http.MethodHead, "/v2/interop/mount/elsewhere/blobs/"+string(layer.Digest), nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD blob in a repository it was never pushed to: %s, want 404", resp.Status)
	}
}

// orasDescriptor is the JSON oras prints with --format json.
type orasDescriptor struct {
	Digest       digest.Digest    `json:"digest"`
	MediaType    string           `json:"mediaType"`
	ArtifactType string           `json:"artifactType"`
	Size         int64            `json:"size"`
	Referrers    []orasDescriptor `json:"referrers"`
}

func (x *interop) testOras(t *testing.T) {
	x.tools.need(t, "oras")
	dir := t.TempDir()
	files := map[string][]byte{
		"a.txt":  []byte("artifact one\n"),
		"b.json": []byte(`{"berth":"artifact","n":2}` + "\n"),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const repo = "interop/oras/art"
	const artType = "application/vnd.berth.test.v1"
	var pushed orasDescriptor
	res := x.tools.runIn(t, dir, "oras", "push", "--plain-http", "--format", "json", "--artifact-type", artType,
		x.ref(repo, "v1"), "a.txt:text/plain", "b.json:application/json")
	if err := json.Unmarshal(res.Stdout, &pushed); err != nil {
		t.Fatalf("oras push output: %v\n%s", err, res.Stdout)
	}

	// the manifest as stored: artifactType, one titled layer per file, each
	// the digest of that file.
	raw := x.tools.run(t, "oras", "manifest", "fetch", "--plain-http", x.ref(repo, "v1")).Stdout
	if digest.FromBytes(raw) != pushed.Digest {
		t.Errorf("oras manifest fetch: bytes hash to %s, push reported %s", digest.FromBytes(raw), pushed.Digest)
	}
	m := parseManifest(t, raw)
	if m.ArtifactType != artType {
		t.Errorf("artifactType %q, want %q", m.ArtifactType, artType)
	}
	byTitle := map[string]v1.Descriptor{}
	for _, l := range m.Layers {
		byTitle[l.Annotations[v1.AnnotationTitle]] = l
	}
	for n, b := range files {
		l, ok := byTitle[n]
		if !ok {
			t.Fatalf("no layer titled %s in %s", n, raw)
		}
		verifyBytes(t, "oras layer descriptor for "+n, l, b)
	}

	// pull: the same files, each matching its descriptor.
	out := t.TempDir()
	x.tools.runIn(t, out, "oras", "pull", "--plain-http", "-o", out, x.ref(repo, "v1"))
	for n, b := range files {
		got, err := os.ReadFile(filepath.Join(out, n))
		if err != nil {
			t.Fatalf("oras pull: %v", err)
		}
		verifyBytes(t, "oras pulled "+n, byTitle[n], got)
		if !bytes.Equal(got, b) {
			t.Errorf("oras pull: %s differs", n)
		}
	}

	// referrers: attach two artifacts to the amd64 image through the
	// referrers API (no tag-schema fallback), then discover them.
	subject := x.ref(x.amd64.Repo, x.amd64.Tag)
	attach := func(file, typ string, content []byte) orasDescriptor {
		if err := os.WriteFile(filepath.Join(dir, file), content, 0o644); err != nil {
			t.Fatal(err)
		}
		res := x.tools.runIn(t, dir, "oras", "attach", "--plain-http", "--distribution-spec", "v1.1-referrers-api",
			"--format", "json", "--artifact-type", typ, subject, file+":text/plain")
		var d orasDescriptor
		if err := json.Unmarshal(res.Stdout, &d); err != nil {
			t.Fatalf("oras attach output: %v\n%s", err, res.Stdout)
		}
		return d
	}
	const sigType, sbomType = "application/vnd.berth.sig.v1", "application/vnd.berth.sbom.v1"
	sig := attach("sig.txt", sigType, []byte("signature\n"))
	sbom := attach("sbom.txt", sbomType, []byte("sbom\n"))

	discover := func(extra ...string) map[digest.Digest]string {
		args := append([]string{"discover", "--plain-http", "--distribution-spec", "v1.1-referrers-api", "--format", "json"}, extra...)
		res := x.tools.run(t, "oras", append(args, subject)...)
		var d orasDescriptor
		if err := json.Unmarshal(res.Stdout, &d); err != nil {
			t.Fatalf("oras discover output: %v\n%s", err, res.Stdout)
		}
		if d.Digest != x.amd64.Digest {
			t.Errorf("oras discover: subject %s, want %s", d.Digest, x.amd64.Digest)
		}
		got := map[digest.Digest]string{}
		for _, r := range d.Referrers {
			got[r.Digest] = r.ArtifactType
		}
		return got
	}
	if got, want := discover(), map[digest.Digest]string{sig.Digest: sigType, sbom.Digest: sbomType}; !mapsEqual(got, want) {
		t.Errorf("oras discover: %v, want %v", got, want)
	}
	if got, want := discover("--artifact-type", sigType), map[digest.Digest]string{sig.Digest: sigType}; !mapsEqual(got, want) {
		t.Errorf("oras discover --artifact-type %s: %v, want %v", sigType, got, want)
	}

	// the referrers response itself.
	resp, body := x.rc.do(t, http.MethodGet, "/v2/"+x.amd64.Repo+"/referrers/"+string(x.amd64.Digest), nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), v1.MediaTypeImageIndex) {
		t.Errorf("GET referrers: %s, Content-Type %q\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	} else {
		refs := map[digest.Digest]string{}
		for _, d := range parseManifest(t, body).Manifests {
			refs[d.Digest] = d.ArtifactType
		}
		if want := (map[digest.Digest]string{sig.Digest: sigType, sbom.Digest: sbomType}); !mapsEqual(refs, want) {
			t.Errorf("GET referrers: %v, want %v", refs, want)
		}
	}

	// the referrers API was used: no "sha256-<hex>" fallback tag.
	for _, tag := range lines(x.tools.run(t, "crane", "ls", "--insecure", x.addr+"/"+x.amd64.Repo).Stdout) {
		if strings.HasPrefix(tag, "sha256-") {
			t.Errorf("repository %s has referrers fallback tag %s", x.amd64.Repo, tag)
		}
	}

	// pull a referrer by digest.
	sigOut := t.TempDir()
	x.tools.runIn(t, sigOut, "oras", "pull", "--plain-http", "-o", sigOut, x.ref(x.amd64.Repo, string(sig.Digest)))
	if b, err := os.ReadFile(filepath.Join(sigOut, "sig.txt")); err != nil || string(b) != "signature\n" {
		t.Errorf("oras pull of the signature: %q, %v", b, err)
	}

	// deleting a referrer removes it from the list.
	x.tools.run(t, "oras", "manifest", "delete", "--plain-http", "--force", x.ref(x.amd64.Repo, string(sig.Digest)))
	if got, want := discover(), map[digest.Digest]string{sbom.Digest: sbomType}; !mapsEqual(got, want) {
		t.Errorf("oras discover after deleting the signature: %v, want %v", got, want)
	}
}

func (x *interop) testRegctl(t *testing.T) {
	x.tools.need(t, "regctl")
	x.tools.run(t, "regctl", "registry", "set", "--tls", "disabled", x.addr)

	const img, cp = "interop/regctl/img", "interop/regctl/copy"
	x.tools.run(t, "regctl", "image", "copy", x.ref(x.arm64.Repo, x.arm64.Tag), x.ref(img, "v1"))
	if got := x.tools.run(t, "regctl", "manifest", "get", "--format", "raw-body", x.ref(img, "v1")).Stdout; !bytes.Equal(got, x.arm64.Manifest) {
		t.Errorf("regctl manifest get: bytes differ from the source:\n%s", got)
	}
	if got := strings.TrimSpace(string(x.tools.run(t, "regctl", "image", "digest", x.ref(img, "v1")).Stdout)); got != string(x.arm64.Digest) {
		t.Errorf("regctl image digest: %s, want %s", got, x.arm64.Digest)
	}
	x.assertImageIn(t, img, x.arm64)

	// an artifact referring to the image, then a copy with referrers.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "note.txt"), []byte("a note\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const noteType = "application/vnd.berth.note.v1"
	x.tools.runIn(t, dir, "regctl", "artifact", "put", "--subject", x.ref(img, "v1"), "--artifact-type", noteType,
		"-f", "note.txt", "-m", "text/plain")
	referrers := func(ref string) map[digest.Digest]string {
		res := x.tools.run(t, "regctl", "artifact", "list", ref, "--format", "{{json .Manifest}}")
		var idx v1.Index
		if err := json.Unmarshal(res.Stdout, &idx); err != nil {
			t.Fatalf("regctl artifact list: %v\n%s", err, res.Stdout)
		}
		out := map[digest.Digest]string{}
		for _, d := range idx.Manifests {
			out[d.Digest] = d.ArtifactType
		}
		return out
	}
	refs := referrers(x.ref(img, "v1"))
	if len(refs) != 1 {
		t.Fatalf("regctl artifact list: %v, want one referrer", refs)
	}
	for _, at := range refs {
		if at != noteType {
			t.Errorf("referrer artifactType %q, want %q", at, noteType)
		}
	}
	x.tools.run(t, "regctl", "image", "copy", "--referrers", x.ref(img, "v1"), x.ref(cp, "v1"))
	if got := referrers(x.ref(cp, "v1")); !mapsEqual(got, refs) {
		t.Errorf("referrers after regctl image copy --referrers: %v, want %v", got, refs)
	}
	x.tools.run(t, "regctl", "image", "copy", x.ref(x.index.Repo, x.index.Tag), x.ref(cp, "multi"))
	if got := strings.TrimSpace(string(x.tools.run(t, "regctl", "image", "digest", x.ref(cp, "multi")).Stdout)); got != string(x.index.Digest) {
		t.Errorf("regctl image copy of the index: digest %s, want %s", got, x.index.Digest)
	}
	// regctl falls back to "sha256-<hex>" tags when a registry does not
	// answer a manifest PUT with a subject with OCI-Subject: none here.
	assertTags(t, "regctl tag ls "+img, lines(x.tools.run(t, "regctl", "tag", "ls", x.addr+"/"+img).Stdout), "v1")
	assertTags(t, "regctl tag ls "+cp, lines(x.tools.run(t, "regctl", "tag", "ls", x.addr+"/"+cp).Stdout), "v1", "multi")

	// delete one tag: the other stays, and the manifest is still there by
	// digest.
	x.tools.run(t, "regctl", "tag", "delete", x.ref(cp, "v1"))
	assertTags(t, "regctl tag ls after tag delete", lines(x.tools.run(t, "regctl", "tag", "ls", x.addr+"/"+cp).Stdout), "multi")
	out := x.tools.mustFail(t, "regctl", "manifest", "get", "--format", "raw-body", x.ref(cp, "v1"))
	assertNotFound(t, "regctl manifest get of the deleted tag", out)
	if got := x.tools.run(t, "regctl", "manifest", "get", "--format", "raw-body", x.ref(cp, string(x.arm64.Digest))).Stdout; !bytes.Equal(got, x.arm64.Manifest) {
		t.Errorf("manifest by digest after its tag was deleted: bytes differ")
	}
}

func (x *interop) testPodman(t *testing.T) {
	x.tools.need(t, "podman")
	// private storage (vfs works in any container), no systemd, no journal.
	store := func() []string {
		d := t.TempDir()
		return []string{"--root", filepath.Join(d, "root"), "--runroot", filepath.Join(d, "run"),
			"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}
	}
	p1 := store()
	podman := func(opts []string, args ...string) result {
		return x.tools.run(t, "podman", append(slices.Clone(opts), args...)...)
	}
	imageID := func(opts []string, ref string) string {
		return strings.TrimSpace(string(podman(opts, "image", "inspect", "--format", "{{.Id}}", ref).Stdout))
	}

	src := x.ref(x.amd64.Repo, x.amd64.Tag)
	podman(p1, "pull", "--tls-verify=false", src)
	if got := imageID(p1, src); got != x.amd64.Config.Digest.Encoded() {
		t.Errorf("podman pull: image id %s, want config digest %s", got, x.amd64.Config.Digest.Encoded())
	}
	// an index resolves to the requested platform.
	multi := x.ref(x.index.Repo, x.index.Tag)
	podman(p1, "pull", "--tls-verify=false", "--arch", "arm64", multi)
	if got := imageID(p1, multi); got != x.arm64.Config.Digest.Encoded() {
		t.Errorf("podman pull --arch arm64 of the index: image id %s, want %s", got, x.arm64.Config.Digest.Encoded())
	}

	// push: podman recompresses, so the layer digest is new; the config
	// is the same, the layer's uncompressed digest is the diff_id, and the
	// files are the ones put in.
	const repo = "interop/podman/img"
	podman(p1, "tag", src, x.ref(repo, "v1"))
	podman(p1, "push", "--tls-verify=false", "--format", "oci", x.ref(repo, "v1"))
	raw, _ := x.rc.manifest(t, repo, "v1")
	m := parseManifest(t, raw)
	if m.Config == nil || m.Config.Digest != x.amd64.Config.Digest {
		t.Fatalf("podman push: config %v, want %s\n%s", m.Config, x.amd64.Config.Digest, raw)
	}
	x.blobInRepo(t, repo, *m.Config)
	if len(m.Layers) != 1 {
		t.Fatalf("podman push: %d layers, want 1\n%s", len(m.Layers), raw)
	}
	lb := x.blobInRepo(t, repo, m.Layers[0])
	if got := diffID(t, m.Layers[0].MediaType, lb); got != x.amd64.DiffIDs[0] {
		t.Errorf("podman push: layer diff_id %s, want %s", got, x.amd64.DiffIDs[0])
	}
	assertFiles(t, "podman push", readTar(t, m.Layers[0].MediaType, bytes.NewReader(lb)), x.amd64.Files)

	// pull it back into empty storage.
	p2 := store()
	podman(p2, "pull", "--tls-verify=false", x.ref(repo, "v1"))
	if got := imageID(p2, x.ref(repo, "v1")); got != x.amd64.Config.Digest.Encoded() {
		t.Errorf("podman pull of the podman-pushed image: id %s, want %s", got, x.amd64.Config.Digest.Encoded())
	}
	digests := strings.TrimSpace(string(podman(p2, "image", "inspect", "--format", "{{.Digest}}", x.ref(repo, "v1")).Stdout))
	if want := digest.FromBytes(raw).String(); digests != want {
		t.Errorf("podman image digest %s, want %s", digests, want)
	}
}
