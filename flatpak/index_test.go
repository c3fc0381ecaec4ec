package flatpak_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/meta"
)

// flatpakQuery is the query string flatpak 1.14 sends, byte for byte.
func flatpakQuery(arch, tag string) string {
	return "label%3Aorg.flatpak.ref%3Aexists=1&architecture=" + arch + "&os=linux&tag=" + tag
}

// world is a registry with a bit of everything, for the query tests.
type world struct {
	e                                 *env
	hello, helloArm, beta, bare, srv  digest.Digest
	multiAmd, multiArm, multiIdx, old digest.Digest
}

func newWorld(t *testing.T) *world {
	e := newEnv(t, flatpak.Options{})
	w := &world{e: e}
	w.hello = e.push("org.berth.hello", img{labels: flatpakLabels("org.berth.Hello"), seed: "hello"}, "latest", "1.0")
	w.helloArm = e.push("org.berth.hello", img{arch: "arm64", labels: flatpakLabels("org.berth.Hello"), seed: "hello"}, "latest-arm64")
	w.beta = e.push("org.berth.hello", img{labels: flatpakLabels("org.berth.Hello"), seed: "beta",
		annotations: map[string]string{"org.example.channel": "beta"}}, "beta")
	w.old = e.push("org.berth.hello", img{labels: flatpakLabels("org.berth.Hello"), seed: "old"}) // untagged
	w.bare = e.push("org.berth.bare", img{labels: flatpakLabels("org.berth.Bare", "org.example.color", "blue"), seed: "bare"}, "latest")
	w.srv = e.push("library/server", img{labels: map[string]string{"maintainer": "ops"}, seed: "srv",
		annotations: map[string]string{"org.example.channel": "stable"}}, "latest", "2.0")
	w.multiAmd = e.push("org.berth.multi", img{labels: flatpakLabels("org.berth.Multi"), seed: "multi"})
	w.multiArm = e.push("org.berth.multi", img{arch: "arm64", labels: flatpakLabels("org.berth.Multi"), seed: "multi"})
	w.multiIdx = e.pushIndex("org.berth.multi",
		map[digest.Digest]string{w.multiAmd: "linux/amd64", w.multiArm: "linux/arm64"},
		[]digest.Digest{w.multiAmd, w.multiArm}, "latest")
	return w
}

func at(repo string, d digest.Digest) string { return repo + "@" + d.String() }

func TestIndexQuery(t *testing.T) {
	w := newWorld(t)
	in := func(d digest.Digest) string { return "org.berth.multi@" + w.multiIdx.String() + ">" + d.String() }
	hello, helloArm, beta := at("org.berth.hello", w.hello), at("org.berth.hello", w.helloArm), at("org.berth.hello", w.beta)
	bare, srv := at("org.berth.bare", w.bare), at("library/server", w.srv)
	// Within a repository, images are in digest order.
	sorted := func(s ...string) []string { slices.Sort(s); return s }
	helloAll := sorted(hello, helloArm, beta)
	for _, tc := range []struct {
		name, query string
		want        []string
	}{
		{"flatpak's amd64 query", flatpakQuery("amd64", "latest"), []string{bare, hello, in(w.multiAmd)}},
		{"flatpak's arm64 query", flatpakQuery("arm64", "latest"), []string{in(w.multiArm)}},
		{"flatpak's query, other tag", flatpakQuery("amd64", "beta"), []string{beta}},
		{"no parameters: everything tagged", "", append(append([]string{srv, bare}, helloAll...), in(w.multiAmd), in(w.multiArm))},
		{"repository", "repository=org.berth.hello", helloAll},
		{"repository or", "repository=org.berth.bare&repository=library%2Fserver", []string{srv, bare}},
		{"tag", "tag=latest", []string{srv, bare, hello, in(w.multiAmd), in(w.multiArm)}},
		{"tag or", "tag=1.0&tag=2.0", []string{srv, hello}},
		{"os", "os=linux&repository=org.berth.bare", []string{bare}},
		{"architecture", "architecture=arm64", []string{helloArm, in(w.multiArm)}},
		{"label exists", "label:org.example.color:exists=1", []string{bare}},
		{"label equals", "label:maintainer=ops", []string{srv}},
		{"label equals or", "label:org.example.color=red&label:org.example.color=blue", []string{bare}},
		{"label as exact key, percent-encoded", "label%3Aorg.example.color=blue", []string{bare}},
		{"annotation exists", "annotation:org.example.channel:exists=1", []string{srv, beta}},
		{"annotation equals", "annotation:org.example.channel=beta", []string{beta}},
		{"labels are not annotations", "annotation:maintainer:exists=1", nil},
		{"different keys: and", "repository=org.berth.hello&architecture=amd64&tag=latest&tag=beta", sorted(hello, beta)},
		{"and, nothing left", "repository=library%2Fserver&label:org.flatpak.ref:exists=1", nil},
		{"unknown tag", "tag=nope", nil},
		{"unknown repository", "repository=nope", nil},
		{"other parameters are ignored", "tag=beta&n=5&tag:matches=x*&Repository=x", []string{beta}},
		{"repeated identical values", "tag=beta&tag=beta", []string{beta}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, ij := w.e.index(tc.query)
			want := tc.want
			if want == nil {
				want = []string{}
			}
			if got := ij.digests(); !slices.Equal(got, want) {
				t.Errorf("GET /index/static?%s:\n got  %q\n want %q", tc.query, got, want)
			}
		})
	}
}

func TestIndexEmpty(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	for _, q := range []string{"", flatpakQuery("amd64", "latest")} {
		_, plain, _ := e.index(q)
		want := `{"Registry":"/","Results":[]}` + "\n"
		if string(plain) != want {
			t.Errorf("empty index ?%s = %s, want %s", q, plain, want)
		}
	}
	e.push("x", img{labels: flatpakLabels("org.x.X")}, "latest")
	_, plain, _ := e.index("tag=none")
	if !bytes.Contains(plain, []byte(`"Results":[]`)) {
		t.Errorf("no match: %s", plain)
	}
}

func TestIndexBadQuery(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	many := strings.Repeat("tag=a&", 65)
	for _, q := range []string{
		"label:org.flatpak.ref:exists=0",
		"label:org.flatpak.ref:exists=true",
		"label:=x",
		"annotation::exists=1",
		"tag=%zz",
		many,
		"tag=" + strings.Repeat("x", 9000),
	} {
		res, body := e.do("GET", "/index/static?"+q, nil)
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("?%.60s: %s %s, want 400", q, res.Status, body)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		for _, p := range []string{"/index/static", "/index/dynamic", "/berth.flatpakrepo", "/icons/x.png", "/flatpakref/app/latest.flatpakref"} {
			res, _ := e.do(m, p, nil)
			if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %s, Allow %q", m, p, res.Status, res.Header.Get("Allow"))
			}
		}
	}
}

func TestIndexFields(t *testing.T) {
	w := newWorld(t)
	_, plain, ij := w.e.index("repository=org.berth.hello&repository=org.berth.multi&tag=latest&tag=1.0")
	if *ij.Registry != "/" {
		t.Errorf("Registry = %q, want %q", *ij.Registry, "/")
	}
	// Exact field names, as flatpak reads them.
	var raw map[string]any
	if err := json.Unmarshal(plain, &raw); err != nil {
		t.Fatal(err)
	}
	results := raw["Results"].([]any)
	if len(results) != 2 {
		t.Fatalf("Results = %s", plain)
	}
	hello := results[0].(map[string]any)
	if got := sortedKeys(hello); !slices.Equal(got, []string{"Images", "Lists", "Name"}) {
		t.Errorf("result keys = %q", got)
	}
	im := hello["Images"].([]any)[0].(map[string]any)
	if got := sortedKeys(im); !slices.Equal(got, []string{"Annotations", "Architecture", "Digest", "Labels", "MediaType", "OS", "Tags"}) {
		t.Errorf("image keys = %q", got)
	}
	multi := results[1].(map[string]any)
	list := multi["Lists"].([]any)[0].(map[string]any)
	if got := sortedKeys(list); !slices.Equal(got, []string{"Digest", "Images", "MediaType", "Tags"}) {
		t.Errorf("list keys = %q", got)
	}
	member := list["Images"].([]any)[0].(map[string]any)
	if _, ok := member["Tags"]; ok {
		t.Errorf("an image inside a list has Tags: %v", member)
	}

	r0 := ij.Results[0]
	if r0.Name != "org.berth.hello" || len(r0.Images) != 1 || len(r0.Lists) != 0 {
		t.Fatalf("hello result = %+v", r0)
	}
	h := r0.Images[0]
	wantLabels := flatpakLabels("org.berth.Hello")
	if h.Digest != w.hello.String() || h.MediaType != "application/vnd.oci.image.manifest.v1+json" ||
		h.OS != "linux" || h.Architecture != "amd64" || !slices.Equal(h.Tags, []string{"1.0", "latest"}) ||
		len(h.Annotations) != 0 || !mapsEqual(h.Labels, wantLabels) {
		t.Errorf("hello image = %+v", h)
	}
	l := ij.Results[1].Lists[0]
	if l.Digest != w.multiIdx.String() || l.MediaType != "application/vnd.oci.image.index.v1+json" ||
		!slices.Equal(l.Tags, []string{"latest"}) || len(l.Images) != 2 ||
		l.Images[0].Digest != w.multiAmd.String() || l.Images[1].Architecture != "arm64" {
		t.Errorf("multi list = %+v", l)
	}
}

func sortedKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// TestIndexMetadataVerbatim: org.flatpak.metadata reaches the client byte
// for byte (V25), HTML-looking and non-ASCII text included.
func TestIndexMetadataVerbatim(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	md := "[Application]\nname=org.x.Odd\ncommand=run <&> \"q\" 'a' é ✓ \\s\n\n[Context]\nfilesystems=~/a b;\n\t\n"
	e.push("odd", img{labels: map[string]string{flatpak.LabelRef: "app/org.x.Odd/x86_64/stable", flatpak.LabelMetadata: md}}, "latest")
	_, plain, ij := e.index(flatpakQuery("amd64", "latest"))
	if got := ij.Results[0].Images[0].Labels[flatpak.LabelMetadata]; got != md {
		t.Errorf("metadata = %q, want %q", got, md)
	}
	if bytes.Contains(plain, []byte(`\u003c`)) {
		t.Errorf("index HTML-escapes labels: %s", plain)
	}
}

// TestIndexLeavesOutBadMetadata: an image whose metadata holds NUL or
// invalid UTF-8 is left out with a warning (V25); the others stay, and the
// image itself still pushes and pulls.
func TestIndexLeavesOutBadMetadata(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	good := e.push("good", img{labels: flatpakLabels("org.x.Good")}, "latest")
	cfg := func(metadata string) []byte {
		return []byte(`{"os":"linux","architecture":"amd64","config":{"Labels":{"org.flatpak.ref":"app/org.x.Bad/x86_64/stable","org.flatpak.metadata":"` +
			metadata + `"}},"rootfs":{"type":"layers","diff_ids":[]}}`)
	}
	for name, c := range map[string][]byte{
		"nul":          cfg(`[Application]\nname=org.x.Bad\u0000\n[Context]\nfilesystems=host;\n`),
		"invalid-utf8": cfg("[Application]\\nname=org.x.Bad\xff\\n"),
		"surrogate":    cfg(`[Application]\nname=org.x.Bad\ud800\n`),
	} {
		d := e.push("bad-"+name, img{config: c, seed: name}, "latest")
		res, _ := e.do("GET", "/v2/bad-"+name+"/manifests/"+d.String(), nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: image not pullable: %s", name, res.Status)
		}
	}
	_, _, ij := e.index(flatpakQuery("amd64", "latest"))
	if got := ij.digests(); !slices.Equal(got, []string{at("good", good)}) {
		t.Errorf("index = %q, want only the good image", got)
	}
	if n := strings.Count(e.logs.String(), "left out of the Flatpak index"); n != 3 {
		t.Errorf("%d warnings about left-out images, want 3:\n%s", n, e.logs)
	}
}

// TestIndexRegistryURL: without a public URL the index names the registry
// and icons relative to the index URL, which the client resolves
// (flatpak-oci-protocol.md §1, §2.3): nothing in it comes from the request,
// so a TLS-terminating proxy cannot turn it into http:// URLs. With a
// public URL, they are built on it.
func TestIndexRegistryURL(t *testing.T) {
	for _, tc := range []struct {
		name, public string
		headers      []string
		want         string
	}{
		{"relative", "", nil, "/"},
		{"relative behind a proxy", "", []string{"X-Forwarded-Proto", "https", "X-Forwarded-Host", "registry.example"}, "/"},
		{"public URL", "https://flatpak.example.com", nil, "https://flatpak.example.com/"},
		{"public URL with prefix and slash", "https://example.com/berth/", nil, "https://example.com/berth/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, flatpak.Options{PublicURL: tc.public, TrustForwardedHeaders: true})
			e.push("app", img{labels: flatpakLabels("org.x.App", flatpak.LabelIcon64, dataURI(pngOf(t, 64, 64, blue)))}, "latest")
			ij := e.indexAs("registry.example:8080", tc.headers...)
			if *ij.Registry != tc.want {
				t.Errorf("Registry = %q, want %q", *ij.Registry, tc.want)
			}
			icon := ij.Results[0].Images[0].Labels[flatpak.LabelIcon64]
			if !strings.HasPrefix(icon, tc.want+"icons/") {
				t.Errorf("icon URL %q does not start with %q", icon, tc.want+"icons/")
			}
		})
	}
}

// TestIndexSameForEveryHost: the answer, and so its ETag and cache entry,
// does not depend on the Host a client used.
func TestIndexSameForEveryHost(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	e.push("app", img{labels: flatpakLabels("org.x.App")}, "latest")
	cm := &countingMeta{Meta: e.md}
	h := flatpak.New(cm, flatpak.Options{}, nil)
	var etags []string
	for _, host := range []string{"a.example", "b.example:8080", "evil.example"} {
		req, _ := http.NewRequest("GET", "http://"+host+"/index/static", nil)
		rec := newRecorder()
		h.ServeHTTP(rec, req)
		if strings.Contains(rec.body.String(), host) {
			t.Errorf("the index names the Host %s: %s", host, rec.body.String())
		}
		etags = append(etags, rec.hdr.Get("ETag"))
	}
	if etags[0] != etags[1] || etags[1] != etags[2] {
		t.Errorf("ETags by host = %q", etags)
	}
	if n := cm.builds.Load(); n != 1 {
		t.Errorf("%d builds for three hosts, want 1", n)
	}
}

// indexAs fetches the whole index with the given Host and headers.
func (e *env) indexAs(host string, headers ...string) indexJSON {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/index/static", nil)
	req.Host = host
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var ij indexJSON
	if err := json.NewDecoder(res.Body).Decode(&ij); err != nil {
		e.t.Fatal(err)
	}
	return ij
}

func TestIndexETag(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	q := flatpakQuery("amd64", "latest")
	get := func(headers ...string) *http.Response {
		t.Helper()
		res, _ := e.do("GET", "/index/static?"+q, nil, headers...)
		return res
	}
	res := get()
	etag := res.Header.Get("ETag")
	if len(etag) < 3 || etag[0] != '"' || strings.HasPrefix(etag, "W/") {
		t.Fatalf("ETag %q is not a strong entity tag", etag)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control = %q, want no-cache", cc)
	}
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		res := get("If-None-Match", inm)
		if res.StatusCode != http.StatusNotModified || res.Header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %s ETag %q, want 304 %s", inm, res.Status, res.Header.Get("ETag"), etag)
		}
	}
	if res := get("If-None-Match", `"stale"`); res.StatusCode != http.StatusOK {
		t.Errorf("stale If-None-Match: %s", res.Status)
	}
	// The ETag is a fingerprint of the answer: the same for an equivalent
	// query (and for another query with the same answer, here empty).
	other, _ := e.do("GET", "/index/static?tag=other", nil)
	if other.Header.Get("ETag") != etag {
		t.Error("two empty answers have different ETags")
	}
	same, _ := e.do("GET", "/index/static?tag=latest&os=linux&architecture=amd64&label:org.flatpak.ref:exists=1", nil)
	if same.Header.Get("ETag") != etag {
		t.Error("the same query in another order has another ETag")
	}
	dyn, _ := e.do("GET", "/index/dynamic?"+q, nil)
	if dyn.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("dynamic Cache-Control = %q", dyn.Header.Get("Cache-Control"))
	}

	// Every change that changes the answer changes the ETag; a no-op push
	// does not.
	var d digest.Digest
	for _, step := range []struct {
		name    string
		changes bool
		fn      func()
	}{
		{"push", true, func() { d = e.push("app", img{labels: flatpakLabels("org.x.App")}, "latest") }},
		{"same push again", false, func() { e.push("app", img{labels: flatpakLabels("org.x.App")}, "latest") }},
		{"another tag", true, func() { e.push("app", img{labels: flatpakLabels("org.x.App")}, "v1") }},
		{"new version", true, func() { e.push("app", img{labels: flatpakLabels("org.x.App"), seed: "2"}, "latest") }},
		{"tag back", true, func() { e.putManifestAgain("app", d, "latest") }},
		{"delete tag", true, func() { e.deleteTag("app", "latest") }},
		// The manifest is untagged by now: the answer stays.
		{"delete manifest", false, func() {
			res, _ := e.do("DELETE", "/v2/app/manifests/"+d.String(), nil)
			if res.StatusCode != http.StatusAccepted {
				t.Fatalf("delete: %s", res.Status)
			}
		}},
		{"blob upload", false, func() { e.pushBlob("app", []byte("unrelated")) }},
	} {
		step.fn()
		res := get("If-None-Match", etag)
		switch {
		case step.changes && res.StatusCode != http.StatusOK:
			t.Errorf("%s: %s, want 200 with a new ETag", step.name, res.Status)
		case !step.changes && res.StatusCode != http.StatusNotModified:
			t.Errorf("%s: %s, want 304", step.name, res.Status)
		}
		if step.changes && res.Header.Get("ETag") == etag {
			t.Errorf("%s: ETag unchanged", step.name)
		}
		etag = res.Header.Get("ETag")
	}
}

// putManifestAgain re-tags an already pushed manifest.
func (e *env) putManifestAgain(repo string, d digest.Digest, tag string) {
	e.t.Helper()
	res, body := e.do("GET", "/v2/"+repo+"/manifests/"+d.String(), nil)
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("get %s: %s", d, res.Status)
	}
	e.putManifest(repo, res.Header.Get("Content-Type"), body, tag)
}

func TestIndexGzip(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	for i := range 20 {
		e.push("app"+strconv.Itoa(i), img{labels: flatpakLabels("org.x.App" + strconv.Itoa(i))}, "latest")
	}
	_, plain, _ := e.index("")
	for _, tc := range []struct {
		accept string
		gzip   bool
	}{
		{"", false},
		{"gzip", true},
		{"deflate, gzip;q=0.5", true},
		{"GZIP", true},
		{"gzip;q=0", false},
		{"gzip;Q=0", false}, // the parameter's name is case-insensitive (RFC 9110 §12.4.2)
		{"br", false},
		{"*", true},
		{"*;q=0", false},
		{"*, gzip;q=0", false},
	} {
		hdrs := []string{}
		if tc.accept != "" {
			hdrs = []string{"Accept-Encoding", tc.accept}
		}
		res, body := e.do("GET", "/index/static", nil, hdrs...)
		if res.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q: Vary = %q", tc.accept, res.Header.Get("Vary"))
		}
		if n, _ := strconv.Atoi(res.Header.Get("Content-Length")); n != len(body) {
			t.Errorf("Accept-Encoding %q: Content-Length %d, body %d bytes", tc.accept, n, len(body))
		}
		isGzip := res.Header.Get("Content-Encoding") == "gzip"
		if isGzip != tc.gzip {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q", tc.accept, res.Header.Get("Content-Encoding"))
			continue
		}
		if !isGzip && !bytes.Equal(body, plain) {
			t.Errorf("Accept-Encoding %q: identity body differs from the gzipped one", tc.accept)
		}
		if isGzip && len(body) >= len(plain) {
			t.Errorf("gzip body (%d bytes) is not smaller than the JSON (%d)", len(body), len(plain))
		}
	}
	// HEAD has the headers and no body.
	res, body := e.do("HEAD", "/index/static", nil, "Accept-Encoding", "gzip")
	if res.StatusCode != http.StatusOK || len(body) != 0 || res.Header.Get("ETag") == "" {
		t.Errorf("HEAD: %s, %d bytes, ETag %q", res.Status, len(body), res.Header.Get("ETag"))
	}
}

// countingMeta counts the index queries that reach the store.
type countingMeta struct {
	flatpak.Meta
	builds atomic.Int64
}

func (c *countingMeta) IndexImages(ctx context.Context, filter meta.IndexFilter, fn func(img, list *meta.Manifest, tags []string, icons map[int]digest.Digest) error) (int64, error) {
	c.builds.Add(1)
	return c.Meta.IndexImages(ctx, filter, fn)
}

func TestIndexCached(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	e.push("app", img{labels: flatpakLabels("org.x.App")}, "latest")
	cm := &countingMeta{Meta: e.md}
	h := flatpak.New(cm, flatpak.Options{}, nil)
	get := func(query string) []byte {
		_, gz := serveGzip(t, h, query)
		return gz
	}
	q := flatpakQuery("amd64", "latest")
	first := get(q)
	for range 5 {
		if b := get(q); !bytes.Equal(b, first) {
			t.Error("cached answer differs")
		}
	}
	get("tag=latest&label%3Aorg.flatpak.ref%3Aexists=1&os=linux&architecture=amd64") // same query, other order
	if n := cm.builds.Load(); n != 1 {
		t.Errorf("%d index builds for 7 identical queries, want 1", n)
	}
	e.push("app", img{labels: flatpakLabels("org.x.App"), seed: "2"}, "latest")
	if b := get(q); bytes.Equal(b, first) {
		t.Error("answer unchanged after a push")
	}
	if n := cm.builds.Load(); n != 2 {
		t.Errorf("%d index builds after a push, want 2", n)
	}

	// Concurrent misses build once.
	e.push("app", img{labels: flatpakLabels("org.x.App"), seed: "3"}, "latest")
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			get(q)
		}()
	}
	for range 8 {
		<-done
	}
	if n := cm.builds.Load(); n != 3 {
		t.Errorf("%d index builds after 8 concurrent misses, want 3", n)
	}

	// No cache: every request builds.
	cm2 := &countingMeta{Meta: e.md}
	h = flatpak.New(cm2, flatpak.Options{CacheBytes: -1}, nil)
	for range 3 {
		get(q)
	}
	if n := cm2.builds.Load(); n != 3 {
		t.Errorf("without a cache: %d builds for 3 requests, want 3", n)
	}
}

// recorder is a minimal http.ResponseWriter for handler-only tests.
type recorder struct {
	code int
	hdr  http.Header
	body bytes.Buffer
}

func newRecorder() *recorder { return &recorder{hdr: http.Header{}} }

func (r *recorder) Header() http.Header { return r.hdr }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func TestIndexQueryEscapes(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	odd := map[string]string{`we"ird$.k&y=`: "v&l=ue;", flatpak.LabelRef: "app/org.x.Odd/x86_64/stable"}
	d := e.push("odd", img{labels: odd}, "latest")
	q := url.Values{"label:" + `we"ird$.k&y=`: {"v&l=ue;"}}.Encode()
	_, _, ij := e.index(q)
	if got := ij.digests(); !slices.Equal(got, []string{at("odd", d)}) {
		t.Errorf("?%s = %q", q, got)
	}
}
