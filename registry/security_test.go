package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// Tests of the audit findings of issue 8 ("Security"). Each names the
// finding it covers; each failed before its fix.

// refManifest is an artifact manifest with the empty config, one layer of
// the given bytes, and optionally a subject and annotations.
func refManifest(t testing.TB, layer []byte, subject *descriptorJSON, ann map[string]string) []byte {
	t.Helper()
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     ociManifest,
		"artifactType":  "application/vnd.example.sig",
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest.FromBytes([]byte("{}")), "size": 2},
		"layers":        []any{map[string]any{"mediaType": "application/octet-stream", "digest": digest.FromBytes(layer), "size": len(layer)}},
	}
	if subject != nil {
		m["subject"] = subject
	}
	if ann != nil {
		m["annotations"] = ann
	}
	// Raw '<' (not \u003c): the registry's own encoding escapes it, six
	// bytes out for one in, as a hostile pusher would exploit.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(buf.Bytes())
}

type descriptorJSON struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
}

// manifestWith is img's manifest with the sizes of its config and layer
// replaced.
func manifestWith(t testing.TB, img image, configSize, layerSize int64) []byte {
	t.Helper()
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     ociManifest,
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(img.config), "size": configSize},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromBytes(img.layer), "size": layerSize}},
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func indexOf(t testing.TB, children ...descriptorJSON) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Audit: descriptor sizes were never checked; a manifest whose config,
// layer, index child or subject size differs from what is stored was
// accepted, even with 10^15 or 2^63-1, which overflowed the image size.
func TestAuditDescriptorSizesChecked(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	img := newImage(t, "sizes")
	tr.push("app", "v1", img)
	cl, ll := int64(len(img.config)), int64(len(img.layer))
	for _, tc := range []struct {
		name           string
		config, layers int64
	}{
		{"config larger", cl + 1, ll},
		{"config smaller", cl - 1, ll},
		{"config 10^15", 1e15, ll},
		{"layer 2^63-1", cl, math.MaxInt64},
		{"layer 10^15", cl, 1e15},
		{"layer 0", cl, 0},
		{"layer negative", cl, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := manifestWith(t, img, tc.config, tc.layers)
			tr.expect(tr.do("PUT", "/v2/app/manifests/bad", body, "Content-Type", ociManifest), 400, "MANIFEST_INVALID")
			tr.expect(tr.do("GET", "/v2/app/manifests/"+digest.FromBytes(body).String(), nil), 404, "MANIFEST_UNKNOWN")
		})
	}
	imgDesc := descriptorJSON{ociManifest, img.digest, int64(len(img.manifest))}

	// Index children: a stored child must have its real size; a child not
	// stored (a sparse index) may say anything, and the total saturates
	// rather than overflows.
	wrong := imgDesc
	wrong.Size = 1e15
	tr.expect(tr.do("PUT", "/v2/app/manifests/idx", indexOf(t, wrong), "Content-Type", "application/vnd.oci.image.index.v1+json"), 400, "MANIFEST_INVALID")
	absent := descriptorJSON{ociManifest, digest.FromString("not pushed"), math.MaxInt64}
	absent2 := descriptorJSON{ociManifest, digest.FromString("not pushed either"), math.MaxInt64}
	idx := indexOf(t, imgDesc, absent, absent2)
	tr.expect(tr.do("PUT", "/v2/app/manifests/idx", idx, "Content-Type", "application/vnd.oci.image.index.v1+json"), 201, "")
	m, err := tr.reg.meta.GetManifest(t.Context(), "app", digest.FromBytes(idx))
	if err != nil {
		t.Fatal(err)
	}
	if m.TotalSize < 0 || m.TotalSize != math.MaxInt64 {
		t.Fatalf("total size of an index with huge absent children = %d, want saturated at %d", m.TotalSize, int64(math.MaxInt64))
	}

	// Subject: a stored subject must have its real size.
	sig := []byte("signature bytes")
	tr.pushBlob("app", sig)
	tr.pushBlob("app", []byte("{}"))
	badSubject := descriptorJSON{ociManifest, img.digest, 1e15}
	tr.expect(tr.do("PUT", "/v2/app/manifests/sig", refManifest(t, sig, &badSubject, nil), "Content-Type", ociManifest), 400, "MANIFEST_INVALID")
	tr.expect(tr.do("PUT", "/v2/app/manifests/sig", refManifest(t, sig, &imgDesc, nil), "Content-Type", ociManifest), 201, "")
	// A subject not (yet) pushed may say any size.
	later := descriptorJSON{ociManifest, digest.FromString("later"), 1e15}
	tr.expect(tr.do("PUT", "/v2/app/manifests/sig2", refManifest(t, sig, &later, nil), "Content-Type", ociManifest), 201, "")
}

// Audit: with sparse manifests on, an absent layer may declare any size,
// but the sum must not overflow.
func TestAuditSparseSizesSaturate(t *testing.T) {
	tr := newTestRegistry(t, Options{SparseManifests: true})
	img := newImage(t, "sparse-sizes")
	tr.pushBlob("app", img.config)
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     ociManifest,
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(img.config), "size": len(img.config)},
		"layers": []any{
			map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromString("a"), "size": int64(math.MaxInt64)},
			map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromString("b"), "size": int64(math.MaxInt64)},
		},
	}
	body, _ := json.Marshal(m)
	tr.expect(tr.do("PUT", "/v2/app/manifests/v1", body, "Content-Type", ociManifest), 201, "")
	got, err := tr.reg.meta.GetManifest(t.Context(), "app", digest.FromBytes(body))
	if err != nil {
		t.Fatal(err)
	}
	if got.TotalSize != math.MaxInt64 {
		t.Fatalf("total size %d, want saturated at %d", got.TotalSize, int64(math.MaxInt64))
	}
	// A present layer with a wrong size is still refused in sparse mode.
	tr.pushBlob("app", img.layer)
	tr.expect(tr.do("PUT", "/v2/app/manifests/v2", manifestWith(t, img, int64(len(img.config)), 1e15), "Content-Type", ociManifest), 400, "MANIFEST_INVALID")
}

// Audit: malformed or over-long digests and upload ids inside a /v2/ path
// answered 404 NAME_UNKNOWN ("no such endpoint") for a repository that
// exists; non-canonical names are NAME_INVALID.
func TestAuditMalformedPathParts(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	img := newImage(t, "paths")
	tr.push("app", "v1", img)
	long := "sha256:" + strings.Repeat("a", 2000)
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v2/app/blobs/" + long, 400, "DIGEST_INVALID"},
		{"HEAD", "/v2/app/blobs/" + long, 400, ""},
		{"DELETE", "/v2/app/blobs/" + long, 400, "DIGEST_INVALID"},
		{"GET", "/v2/app/blobs/sha256:abc/def", 400, "DIGEST_INVALID"},
		{"GET", "/v2/app/blobs/sha256:../../etc/passwd", 400, "NAME_INVALID"},
		{"GET", "/v2/app/manifests/" + long, 400, "DIGEST_INVALID"},
		{"GET", "/v2/app/manifests/sha256:abc/def", 400, "DIGEST_INVALID"},
		{"GET", "/v2/app/referrers/" + long, 400, "DIGEST_INVALID"},
		{"GET", "/v2/app/referrers/sha256:a/b", 400, "DIGEST_INVALID"},
		{"GET", "/v2/app/blobs/uploads/" + strings.Repeat("0", 2000), 404, "BLOB_UPLOAD_UNKNOWN"},
		{"PATCH", "/v2/app/blobs/uploads/" + strings.Repeat("0", 2000), 404, "BLOB_UPLOAD_UNKNOWN"},
		{"GET", "/v2/app/blobs/uploads/0123456789abcdef0123456789abcdef/x", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"DELETE", "/v2/app/blobs/uploads/../../x", 400, "NAME_INVALID"},
		{"GET", "/v2/" + strings.Repeat("a", 2000) + "/manifests/v1", 400, "NAME_INVALID"},
		{"GET", "/v2/" + strings.Repeat("a/", 600) + "tags/list", 400, "NAME_INVALID"},
		{"GET", "/v2/app/./manifests/v1", 400, "NAME_INVALID"},
		{"GET", "/v2/other/../app/manifests/v1", 400, "NAME_INVALID"},
		{"PUT", "/v2/other/../app/manifests/v1", 400, "NAME_INVALID"},
		{"GET", "/v2//app/manifests/v1", 400, "NAME_INVALID"},
		{"GET", "/v2/app//tags/list", 400, "NAME_INVALID"},
		{"GET", "/v2/app/manifests/..", 400, "NAME_INVALID"},
		{"POST", "/v2/app/../app/blobs/uploads/", 400, "NAME_INVALID"},
	} {
		t.Run(tc.method+" "+tc.path[:min(len(tc.path), 60)], func(t *testing.T) {
			tr.expect(tr.do(tc.method, tc.path, nil), tc.status, tc.code)
		})
	}
}

// Audit: the 416 for a bad Range of a blob that exists said BLOB_UNKNOWN.
func TestAuditRangeNotSatisfiableCode(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	img := newImage(t, "range")
	tr.push("app", "v1", img)
	d := digest.FromBytes(img.layer)
	for _, rng := range []string{"bytes=500-600", "bytes=x-y", "lines=1-2"} {
		r := tr.do("GET", "/v2/app/blobs/"+d.String(), nil, "Range", rng)
		tr.expect(r, 416, string(CodeRangeInvalid))
		if r.header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(img.layer)) {
			t.Fatalf("416 Content-Range %q", r.header.Get("Content-Range"))
		}
	}
}

// Audit: the 413 of an oversized manifest said "provided length did not
// match content length".
func TestAuditOversizedManifestMessage(t *testing.T) {
	tr := newTestRegistry(t, Options{MaxManifestBytes: 1000})
	big := bytes.Repeat([]byte(" "), 1001)
	for _, body := range []any{big, bytes.NewReader(big)} {
		r := tr.do("PUT", "/v2/app/manifests/v1", body, "Content-Type", ociManifest)
		tr.expect(r, 413, "MANIFEST_INVALID")
		var e struct {
			Errors []struct{ Message, Detail string }
		}
		if err := json.Unmarshal(r.body, &e); err != nil || len(e.Errors) != 1 {
			t.Fatalf("body %s", r.body)
		}
		if strings.Contains(e.Errors[0].Message, "did not match") || !strings.Contains(e.Errors[0].Message, "limit") || !strings.Contains(e.Errors[0].Detail, "1000 bytes") {
			t.Fatalf("413 says %q / %q", e.Errors[0].Message, e.Errors[0].Detail)
		}
	}
}

// Audit: an invalid value in ?tag= was silently dropped (Go's query parser
// drops pairs it cannot parse) and the manifest stored without it.
func TestAuditInvalidTagParamRefused(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	img := newImage(t, "tagparam")
	tr.pushBlob("app", img.config)
	tr.pushBlob("app", img.layer)
	for _, q := range []string{"tag=v1;rm", "tag=%zz", "tag=", "tag=bad!tag", "tag=ok&tag=.hidden", "tag=" + strings.Repeat("t", 129)} {
		r := tr.do("PUT", "/v2/app/manifests/"+img.digest.String()+"?"+q, img.manifest, "Content-Type", ociManifest)
		tr.expect(r, 400, "MANIFEST_INVALID")
		tr.expect(tr.do("HEAD", "/v2/app/manifests/"+img.digest.String(), nil), 404, "")
	}
	tr.expect(tr.do("PUT", "/v2/app/manifests/"+img.digest.String()+"?tag=a&tag=b", img.manifest, "Content-Type", ociManifest), 201, "")
	tr.expect(tr.do("HEAD", "/v2/app/manifests/b", nil), 200, "")
}

// pageThrough follows Link headers from first, decoding each page with
// items, and returns what it saw and the largest body.
func pageThrough(t *testing.T, tr *testRegistry, first string, items func([]byte) []string) (all []string, pages, largest int) {
	t.Helper()
	next := first
	for next != "" {
		r := tr.do("GET", next, nil)
		tr.expect(r, 200, "")
		pages++
		largest = max(largest, len(r.body))
		page := items(r.body)
		if len(page) == 0 && r.header.Get("Link") != "" {
			t.Fatalf("an empty page with a Link: %s", next)
		}
		all = append(all, page...)
		next = ""
		if l := r.header.Get("Link"); l != "" {
			next = strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
		}
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
	}
	return all, pages, largest
}

func referrerDigests(t *testing.T) func([]byte) []string {
	return func(b []byte) []string {
		var idx struct{ Manifests []struct{ Digest string } }
		if err := json.Unmarshal(b, &idx); err != nil {
			t.Fatalf("referrers body: %v", err)
		}
		var out []string
		for _, m := range idx.Manifests {
			out = append(out, m.Digest)
		}
		return out
	}
}

// pushReferrers pushes n referrers of a new subject into repo, each with an
// annotation of annBytes bytes, and returns the subject and the referrers'
// digests in order.
func pushReferrers(t testing.TB, tr *testRegistry, repo string, n, annBytes int) (digest.Digest, []string) {
	t.Helper()
	subject := newImage(t, "subject")
	tr.push(repo, "subject", subject)
	tr.pushBlob(repo, []byte("{}"))
	layer := []byte("sig")
	tr.pushBlob(repo, layer)
	sd := descriptorJSON{ociManifest, subject.digest, int64(len(subject.manifest))}
	var want []string
	for i := range n {
		ann := map[string]string{"i": fmt.Sprint(i), "big": strings.Repeat("<", annBytes)}
		body := refManifest(t, layer, &sd, ann)
		tr.expect(tr.do("PUT", "/v2/"+repo+"/manifests/"+digest.FromBytes(body).String(), body, "Content-Type", ociManifest), 201, "")
		want = append(want, digest.FromBytes(body).String())
	}
	slices.Sort(want)
	return subject.digest, want
}

// Audit: listings were unbounded in bytes: one referrers GET returned
// 126 MB. Pages end early at MaxListingBytes with a Link to the rest.
func TestAuditListingBytesBounded(t *testing.T) {
	const limit = 64 << 10
	tr := newTestRegistry(t, Options{MaxListingBytes: limit})
	subject, want := pushReferrers(t, tr, "app", 30, 10<<10)
	got, pages, largest := pageThrough(t, tr, "/v2/app/referrers/"+subject.String(), referrerDigests(t))
	if !slices.Equal(got, want) {
		t.Fatalf("paged referrers: %d of %d", len(got), len(want))
	}
	if largest > limit || pages < 5 {
		t.Fatalf("referrers: largest page %d bytes (limit %d) in %d pages", largest, limit, pages)
	}

	// One referrer larger than the limit still comes, alone on its page,
	// so paging always progresses.
	tr2 := newTestRegistry(t, Options{MaxListingBytes: 1 << 10})
	subject2, want2 := pushReferrers(t, tr2, "app", 3, 4<<10)
	got2, pages2, _ := pageThrough(t, tr2, "/v2/app/referrers/"+subject2.String(), referrerDigests(t))
	if !slices.Equal(got2, want2) || pages2 != 3 {
		t.Fatalf("oversized referrers: %d of %d in %d pages", len(got2), len(want2), pages2)
	}

	// Tags and catalog page by bytes too.
	tr3 := newTestRegistry(t, Options{MaxListingBytes: 1 << 10})
	img := newImage(t, "tags")
	tr3.push("app", "v0", img)
	var wantTags []string
	for i := range 60 {
		tag := fmt.Sprintf("tag-%03d-%s", i, strings.Repeat("x", 40))
		tr3.expect(tr3.do("PUT", "/v2/app/manifests/"+tag, img.manifest, "Content-Type", ociManifest), 201, "")
		wantTags = append(wantTags, tag)
	}
	wantTags = append(wantTags, "v0")
	tags, tagPages, tagLargest := pageThrough(t, tr3, "/v2/app/tags/list", func(b []byte) []string {
		var tl struct{ Tags []string }
		if err := json.Unmarshal(b, &tl); err != nil {
			t.Fatal(err)
		}
		return tl.Tags
	})
	if !slices.Equal(tags, wantTags) || tagLargest > 1<<10 || tagPages < 3 {
		t.Fatalf("tags: %d of %d in %d pages, largest %d", len(tags), len(wantTags), tagPages, tagLargest)
	}
	var wantRepos []string
	for i := range 40 {
		repo := fmt.Sprintf("team-%02d/%s", i, strings.Repeat("r", 40))
		tr3.pushBlob(repo, []byte("x"))
		wantRepos = append(wantRepos, repo)
	}
	wantRepos = append([]string{"app"}, wantRepos...)
	repos, repoPages, repoLargest := pageThrough(t, tr3, "/v2/_catalog", func(b []byte) []string {
		var c struct{ Repositories []string }
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		return c.Repositories
	})
	if !slices.Equal(repos, wantRepos) || repoLargest > 1<<10 || repoPages < 3 {
		t.Fatalf("catalog: %d of %d in %d pages, largest %d", len(repos), len(wantRepos), repoPages, repoLargest)
	}
}

// Audit: one anonymous referrers GET took 608 MB of memory (30 referrers
// with large annotations; 4 concurrent: 1.9 GB). Memory must stay flat:
// the bytes allocated by N concurrent requests (an upper bound on the heap
// they can have grown) stay within a generous bound that the old code
// (each request loading and marshalling every referrer) exceeded several
// times over.
func TestAuditReferrersMemoryBounded(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	const n, annBytes, concurrent = 30, 600 << 10, 4
	subject, _ := pushReferrers(t, tr, "app", n, annBytes)
	path := "/v2/app/referrers/" + subject.String()

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	sizes := make([]int, concurrent)
	for i := range concurrent {
		wg.Go(func() {
			r := tr.do("GET", path, nil)
			if r.status != 200 {
				t.Errorf("status %d", r.status)
			}
			sizes[i] = len(r.body)
		})
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	// Each page holds at most DefaultMaxListingBytes plus one referrer; the
	// old answer was the whole 30 × 3.6 MiB (each '<' is \u003c in JSON),
	// and 4 concurrent requests allocated 4.1 GB.
	for _, s := range sizes {
		if s > DefaultMaxListingBytes+6*annBytes+1024 {
			t.Fatalf("a referrers page of %d bytes", s)
		}
	}
	const bound = concurrent * 64 << 20
	t.Logf("%d concurrent referrers GETs allocated %d MiB in all (bound %d MiB)", concurrent, allocated>>20, bound>>20)
	if allocated > bound {
		t.Fatalf("%d concurrent referrers GETs allocated %d MiB, more than %d MiB", concurrent, allocated>>20, bound>>20)
	}
}

// BenchmarkReferrersLarge measures one referrers GET of 30 referrers with
// 600 KiB annotations of '<' each (the audit's hostile case); see bytes/op.
func BenchmarkReferrersLarge(b *testing.B) {
	tr := newTestRegistry(b, Options{})
	subject, _ := pushReferrers(b, tr, "app", 30, 600<<10)
	path := "/v2/app/referrers/" + subject.String()
	b.ReportAllocs()
	for b.Loop() {
		if r := tr.do("GET", path, nil); r.status != 200 {
			b.Fatal(r.status)
		}
	}
}

// Audit: upload sessions were unlimited and anonymous (1,800/s, each kept
// 24 h). Open sessions are capped per client and per repository.
func TestAuditUploadSessionsCapped(t *testing.T) {
	tr := newTestRegistry(t, Options{MaxUploadsPerClient: 3, MaxUploadsPerRepository: 5,
		ClientID: func(r *http.Request) string { return r.Header.Get("X-Client") }})
	var locs []string
	for i := range 3 {
		r := tr.do("POST", fmt.Sprintf("/v2/r%d/blobs/uploads/", i), nil, "X-Client", "alice")
		tr.expect(r, 202, "")
		locs = append(locs, r.header.Get("Location"))
	}
	r := tr.do("POST", "/v2/r9/blobs/uploads/", nil, "X-Client", "alice")
	tr.expect(r, 429, "TOOMANYREQUESTS")
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("429 without Retry-After: %v", r.header)
	}
	// A failed mount falls back to a session: capped too.
	tr.expect(tr.do("POST", "/v2/r9/blobs/uploads/?mount="+digest.FromString("x").String()+"&from=r0", nil, "X-Client", "alice"), 429, "TOOMANYREQUESTS")
	// A monolithic upload holds no session: not capped.
	tr.expect(tr.do("POST", "/v2/r9/blobs/uploads/?digest="+digest.FromString("mono").String(), "mono", "X-Client", "alice"), 201, "")
	// Ending a session frees a place.
	tr.expect(tr.do("DELETE", locs[0], nil, "X-Client", "alice"), 204, "")
	tr.expect(tr.do("POST", "/v2/r9/blobs/uploads/", nil, "X-Client", "alice"), 202, "")

	// Per repository, whatever the client.
	for i := range 5 {
		tr.expect(tr.do("POST", "/v2/shared/blobs/uploads/", nil, "X-Client", fmt.Sprint("c", i)), 202, "")
	}
	tr.expect(tr.do("POST", "/v2/shared/blobs/uploads/", nil, "X-Client", "c9"), 429, "TOOMANYREQUESTS")

	// The default client is the remote host; defaults cap at 100 per client.
	def := newTestRegistry(t, Options{})
	for range DefaultMaxUploadsPerClient {
		def.expect(def.do("POST", "/v2/r/blobs/uploads/", nil), 202, "")
	}
	def.expect(def.do("POST", "/v2/other/blobs/uploads/", nil), 429, "TOOMANYREQUESTS")
	// A negative cap is no cap.
	none := newTestRegistry(t, Options{MaxUploadsPerClient: -1, MaxUploadsPerRepository: -1})
	for range DefaultMaxUploadsPerClient + 1 {
		none.expect(none.do("POST", "/v2/r/blobs/uploads/", nil), 202, "")
	}
}
