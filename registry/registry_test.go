package registry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

func TestBase(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	r := tr.do("GET", "/v2/", nil)
	tr.expect(r, 200, "")
	if string(r.body) != "{}" || r.header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatalf("base: %s %v", r.body, r.header)
	}
	tr.expect(tr.do("GET", "/v2/nothing/here", nil), 404, "NAME_UNKNOWN")
	tr.expect(tr.do("POST", "/v2/", nil), 405, "UNSUPPORTED")
}

func TestPushPullImage(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	img := newImage(t, "one")
	tr.push("team/app", "v1", img)
	tr.pull("team/app", "v1", img)
	tr.pull("team/app", img.digest.String(), img)

	r := tr.do("HEAD", "/v2/team/app/manifests/v1", nil)
	tr.expect(r, 200, "")
	if r.header.Get("Content-Length") != fmt.Sprint(len(img.manifest)) ||
		r.header.Get("Docker-Content-Digest") != img.digest.String() ||
		r.header.Get("Content-Type") != ociManifest {
		t.Fatalf("HEAD manifest headers: %v", r.header)
	}
	d := digest.FromBytes(img.layer)
	r = tr.do("HEAD", "/v2/team/app/blobs/"+d.String(), nil)
	tr.expect(r, 200, "")
	if r.header.Get("Content-Length") != fmt.Sprint(len(img.layer)) || r.header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("HEAD blob headers: %v", r.header)
	}
	// Ranges are served from the file.
	r = tr.do("GET", "/v2/team/app/blobs/"+d.String(), nil, "Range", "bytes=2-5")
	tr.expect(r, 206, "")
	if string(r.body) != string(img.layer[2:6]) {
		t.Fatalf("range body %q", r.body)
	}
	r = tr.do("GET", "/v2/team/app/blobs/"+d.String(), nil, "Range", "bytes=500-600")
	tr.expect(r, 416, "")
	if r.header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(img.layer)) {
		t.Fatalf("416 Content-Range %q", r.header.Get("Content-Range"))
	}
}

func TestChunkedUpload(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	data := bytes.Repeat([]byte("0123456789"), 300)
	d := digest.FromBytes(data)
	r := tr.do("POST", "/v2/r/blobs/uploads/", nil)
	tr.expect(r, 202, "")
	loc := r.header.Get("Location")
	if r.header.Get("Range") != "0-0" || loc == "" {
		t.Fatalf("POST headers %v", r.header)
	}
	r = tr.do("PATCH", loc, data[:1000], "Content-Range", "0-999")
	tr.expect(r, 202, "")
	if r.header.Get("Range") != "0-999" {
		t.Fatalf("Range after first chunk %q", r.header.Get("Range"))
	}
	// A gap and an overlap are refused with 416 and the upload is unchanged.
	tr.expect(tr.do("PATCH", loc, data[1500:2000], "Content-Range", "1500-1999"), 416, "BLOB_UPLOAD_INVALID")
	r = tr.do("PATCH", loc, data[500:1500], "Content-Range", "500-1499")
	tr.expect(r, 416, "BLOB_UPLOAD_INVALID")
	if r.header.Get("Range") != "0-999" {
		t.Fatalf("416 Range %q", r.header.Get("Range"))
	}
	// Wrong size: Content-Length does not match Content-Range.
	tr.expect(tr.do("PATCH", loc, data[1000:1100], "Content-Range", "1000-1999"), 400, "SIZE_INVALID")
	r = tr.do("GET", loc, nil)
	tr.expect(r, 204, "")
	if r.header.Get("Range") != "0-999" {
		t.Fatalf("status Range %q", r.header.Get("Range"))
	}
	// A streamed chunk (no Content-Range, no Content-Length).
	r = tr.do("PATCH", loc, bytes.NewReader(data[1000:2000]))
	tr.expect(r, 202, "")
	// The last chunk with the PUT.
	r = tr.do("PUT", loc+"?digest="+d.String(), data[2000:], "Content-Range", "2000-2999")
	tr.expect(r, 201, "")
	if r.header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("PUT headers %v", r.header)
	}
	r = tr.do("GET", "/v2/r/blobs/"+d.String(), nil)
	tr.expect(r, 200, "")
	if !bytes.Equal(r.body, data) {
		t.Fatal("chunked blob differs")
	}
	// The session is gone.
	tr.expect(tr.do("GET", loc, nil), 404, "BLOB_UPLOAD_UNKNOWN")
}

func TestUploadSHA512(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	data := []byte("sha512 content")
	d := digest.SHA512.FromBytes(data)
	r := tr.do("POST", "/v2/r/blobs/uploads/", nil)
	loc := r.header.Get("Location")
	tr.expect(tr.do("PATCH", loc, data), 202, "")
	r = tr.do("PUT", loc+"?digest="+d.String(), nil)
	tr.expect(r, 201, "")
	r = tr.do("GET", "/v2/r/blobs/"+d.String(), nil)
	tr.expect(r, 200, "")
	if !bytes.Equal(r.body, data) || r.header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("sha512 blob: %q %v", r.body, r.header)
	}
}

func TestWrongDigest(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	data := []byte("real content")
	wrong := digest.FromString("other content")
	tr.expect(tr.do("POST", "/v2/r/blobs/uploads/?digest="+wrong.String(), data), 400, "DIGEST_INVALID")
	tr.expect(tr.do("HEAD", "/v2/r/blobs/"+wrong.String(), nil), 404, "")
	tr.expect(tr.do("HEAD", "/v2/r/blobs/"+digest.FromBytes(data).String(), nil), 404, "")

	r := tr.do("POST", "/v2/r/blobs/uploads/", nil)
	loc := r.header.Get("Location")
	tr.expect(tr.do("PATCH", loc, data), 202, "")
	tr.expect(tr.do("PUT", loc+"?digest="+wrong.String(), nil), 400, "DIGEST_INVALID")
	tr.expect(tr.do("HEAD", "/v2/r/blobs/"+wrong.String(), nil), 404, "")
	// Malformed digests never reach a store or a path (V24).
	for _, bad := range []string{"sha256:../../etc/passwd", "sha256:ABC", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:" + strings.Repeat("a", 63)} {
		r := tr.do("POST", "/v2/r/blobs/uploads/?digest="+bad, data)
		if r.status != 400 || (r.code() != "DIGEST_INVALID" && r.code() != "UNSUPPORTED") {
			t.Fatalf("digest %q: %d %s", bad, r.status, r.body)
		}
		r = tr.do("GET", "/v2/r/blobs/"+bad, nil)
		if strings.Contains(bad, "/") {
			tr.expect(r, 400, "NAME_INVALID") // a non-canonical path (issue 8)
		} else {
			tr.expect(r, 400, "")
		}
	}
}

func TestUnknownUpload(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	for _, id := range []string{"0123456789abcdef0123456789abcdef", "..", "..%2F..%2Fmeta.db", "x", "%2e%2e"} {
		for _, m := range []string{"GET", "PATCH", "PUT", "DELETE"} {
			// Ids that decode to '.' or '..' path elements make a
			// non-canonical path (400 NAME_INVALID, issue 8); others are
			// an unknown upload; never a file.
			r := tr.do(m, "/v2/r/blobs/uploads/"+id+"?digest="+digest.FromString("").String(), nil)
			if !(r.status == 404 && r.code() == "BLOB_UPLOAD_UNKNOWN") && !(r.status == 400 && r.code() == "NAME_INVALID") {
				t.Fatalf("%s upload %q: %d %s", m, id, r.status, r.body)
			}
		}
	}
	// An upload belongs to its repository.
	r := tr.do("POST", "/v2/a/blobs/uploads/", nil)
	loc := r.header.Get("Location")
	other := strings.Replace(loc, "/v2/a/", "/v2/b/", 1)
	tr.expect(tr.do("PATCH", other, []byte("x")), 404, "BLOB_UPLOAD_UNKNOWN")
	tr.expect(tr.do("DELETE", loc, nil), 204, "")
	tr.expect(tr.do("GET", loc, nil), 404, "BLOB_UPLOAD_UNKNOWN")
}

func TestBadNames(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	for _, name := range []string{"..", "a/../b", "UPPER", "a//b", "-a", "a-", strings.Repeat("a", 300), strings.Repeat("ab/", 100) + "c"} {
		for _, path := range []string{"/v2/" + name + "/tags/list", "/v2/" + name + "/manifests/latest", "/v2/" + name + "/blobs/uploads/"} {
			m := "GET"
			if strings.HasSuffix(path, "uploads/") {
				m = "POST"
			}
			r := tr.do(m, path, nil)
			if r.status != 400 || r.code() != "NAME_INVALID" {
				// The HTTP client cleans some paths ("a/../b"); those must
				// still not be a 500.
				if r.status >= 500 {
					t.Fatalf("%s %s: %d", m, path, r.status)
				}
				if name != "a/../b" && name != ".." && name != "a//b" {
					t.Fatalf("%s %s: %d %s, want 400 NAME_INVALID", m, path, r.status, r.body)
				}
			}
		}
	}
	tr.expect(tr.do("GET", "/v2/r/manifests/bad!tag", nil), 400, "MANIFEST_INVALID")
	tr.expect(tr.do("GET", "/v2/r/manifests/"+strings.Repeat("t", 129), nil), 400, "MANIFEST_INVALID")
}

func TestManifestErrorsLeaveStoreIntact(t *testing.T) {
	tr := newTestRegistry(t, Options{MaxManifestBytes: 4 << 20})
	img := newImage(t, "baseline")
	tr.push("r", "v1", img)

	// A manifest referencing a missing blob.
	other := newImage(t, "other")
	tr.pushBlob("r", other.config) // config present, layer missing
	tr.expect(tr.do("PUT", "/v2/r/manifests/v1", other.manifest, "Content-Type", ociManifest), 400, "MANIFEST_BLOB_UNKNOWN")
	// Missing config.
	third := newImage(t, "third")
	tr.pushBlob("r", third.layer)
	tr.expect(tr.do("PUT", "/v2/r/manifests/v1", third.manifest, "Content-Type", ociManifest), 400, "MANIFEST_BLOB_UNKNOWN")
	// A blob linked only in another repository does not count (V8).
	tr.pushBlob("elsewhere", other.layer)
	tr.expect(tr.do("PUT", "/v2/r/manifests/v1", other.manifest, "Content-Type", ociManifest), 400, "MANIFEST_BLOB_UNKNOWN")

	// Malformed JSON, wrong media type, ambiguous documents (V6).
	tr.expect(tr.do("PUT", "/v2/r/manifests/v1", `{"schemaVersion":2,`, "Content-Type", ociManifest), 400, "MANIFEST_INVALID")
	tr.expect(tr.do("PUT", "/v2/r/manifests/v1", `[]`, "Content-Type", ociManifest), 400, "MANIFEST_INVALID")
	ambiguous := fmt.Sprintf(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[],"manifests":[]}`, digest.FromBytes(img.config), len(img.config))
	tr.expect(tr.do("PUT", "/v2/r/manifests/v1", ambiguous, "Content-Type", ociManifest), 400, "MANIFEST_INVALID")
	tr.expect(tr.do("PUT", "/v2/r/manifests/v1", ambiguous, "Content-Type", "application/vnd.oci.image.index.v1+json"), 400, "MANIFEST_INVALID")
	tr.expect(tr.do("PUT", "/v2/r/manifests/v1", img.manifest, "Content-Type", "text/plain"), 400, "MANIFEST_INVALID")
	tr.expect(tr.do("PUT", "/v2/r/manifests/v1", img.manifest, "Content-Type", "application/vnd.oci.image.index.v1+json"), 400, "MANIFEST_INVALID")
	var r resp

	// Digest in the URL that does not match the body.
	tr.expect(tr.do("PUT", "/v2/r/manifests/"+digest.FromString("x").String(), img.manifest, "Content-Type", ociManifest), 400, "DIGEST_INVALID")
	tr.expect(tr.do("PUT", "/v2/r/manifests/sha256:baddigeststring", img.manifest, "Content-Type", ociManifest), 400, "DIGEST_INVALID")

	// Oversized, with and without Content-Length (V2).
	big := bytes.Repeat([]byte(" "), 4<<20+1)
	tr.expect(tr.do("PUT", "/v2/r/manifests/v1", big, "Content-Type", ociManifest), 413, "MANIFEST_INVALID")
	tr.expect(tr.do("PUT", "/v2/r/manifests/v1", bytes.NewReader(big), "Content-Type", ociManifest), 413, "MANIFEST_INVALID")

	// Everything stored before still pulls, unchanged.
	tr.pull("r", "v1", img)
	var tags struct{ Tags []string }
	r = tr.do("GET", "/v2/r/tags/list", nil)
	tr.expect(r, 200, "")
	if err := json.Unmarshal(r.body, &tags); err != nil || len(tags.Tags) != 1 || tags.Tags[0] != "v1" {
		t.Fatalf("tags after refused pushes: %s", r.body)
	}
}

func TestSparseManifests(t *testing.T) {
	img := newImage(t, "sparse")
	strict := newTestRegistry(t, Options{})
	strict.pushBlob("r", img.config)
	strict.expect(strict.do("PUT", "/v2/r/manifests/v1", img.manifest, "Content-Type", ociManifest), 400, "MANIFEST_BLOB_UNKNOWN")

	sparse := newTestRegistry(t, Options{SparseManifests: true})
	sparse.pushBlob("r", img.config)
	sparse.expect(sparse.do("PUT", "/v2/r/manifests/v1", img.manifest, "Content-Type", ociManifest), 201, "")
	// The config is still required.
	other := newImage(t, "no-config")
	sparse.expect(sparse.do("PUT", "/v2/r/manifests/v2", other.manifest, "Content-Type", ociManifest), 400, "MANIFEST_BLOB_UNKNOWN")
}

func TestBlobScopedToRepository(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	data := []byte("secret layer")
	d := tr.pushBlob("private", data)
	// Deduplicated underneath, but not readable or mountable from elsewhere
	// unless linked there (V5, V8).
	tr.expect(tr.do("GET", "/v2/public/blobs/"+d.String(), nil), 404, "BLOB_UNKNOWN")
	tr.expect(tr.do("HEAD", "/v2/public/blobs/"+d.String(), nil), 404, "")
	r := tr.do("POST", "/v2/public/blobs/uploads/?mount="+d.String()+"&from=other", nil)
	tr.expect(r, 202, "")
	tr.expect(tr.do("GET", "/v2/public/blobs/"+d.String(), nil), 404, "BLOB_UNKNOWN")

	// Mount from the repository that has it.
	r = tr.do("POST", "/v2/copy/blobs/uploads/?mount="+d.String()+"&from=private", nil)
	tr.expect(r, 201, "")
	if r.header.Get("Location") != "/v2/copy/blobs/"+d.String() || r.header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("mount headers %v", r.header)
	}
	tr.expect(tr.do("GET", "/v2/copy/blobs/"+d.String(), nil), 200, "")

	// Deleting in one repository leaves the other alone, and a deleted
	// link cannot be mounted from.
	tr.expect(tr.do("DELETE", "/v2/private/blobs/"+d.String(), nil), 202, "")
	tr.expect(tr.do("HEAD", "/v2/private/blobs/"+d.String(), nil), 404, "")
	tr.expect(tr.do("GET", "/v2/copy/blobs/"+d.String(), nil), 200, "")
	tr.expect(tr.do("POST", "/v2/third/blobs/uploads/?mount="+d.String()+"&from=private", nil), 202, "")
	tr.expect(tr.do("DELETE", "/v2/private/blobs/"+d.String(), nil), 404, "BLOB_UNKNOWN")

	// Mount without from finds it where it is still linked.
	tr.expect(tr.do("POST", "/v2/fourth/blobs/uploads/?mount="+d.String(), nil), 201, "")
	tr.expect(tr.do("DELETE", "/v2/copy/blobs/"+d.String(), nil), 202, "")
	tr.expect(tr.do("DELETE", "/v2/fourth/blobs/"+d.String(), nil), 202, "")
	tr.expect(tr.do("POST", "/v2/fifth/blobs/uploads/?mount="+d.String(), nil), 202, "")
}

func TestTagsAndCatalogPaging(t *testing.T) {
	tr := newTestRegistry(t, Options{PageMax: 5})
	img := newImage(t, "tags")
	tr.push("r", "v0", img)
	for i := 1; i < 12; i++ {
		tr.expect(tr.do("PUT", fmt.Sprintf("/v2/r/manifests/v%d", i), img.manifest, "Content-Type", ociManifest), 201, "")
	}
	// A huge n is capped, never used to size anything (V1).
	r := tr.do("GET", "/v2/r/tags/list?n=1000000000", nil)
	tr.expect(r, 200, "")
	var tl struct {
		Name string
		Tags []string
	}
	if err := json.Unmarshal(r.body, &tl); err != nil || len(tl.Tags) != 5 {
		t.Fatalf("capped page: %s", r.body)
	}
	var all []string
	next := "/v2/r/tags/list?n=4"
	for next != "" {
		r := tr.do("GET", next, nil)
		tr.expect(r, 200, "")
		if err := json.Unmarshal(r.body, &tl); err != nil {
			t.Fatal(err)
		}
		all = append(all, tl.Tags...)
		next = ""
		if l := r.header.Get("Link"); l != "" {
			next = l[1:strings.Index(l, ">")]
		}
	}
	want := "v0 v1 v10 v11 v2 v3 v4 v5 v6 v7 v8 v9"
	if strings.Join(all, " ") != want {
		t.Fatalf("paged tags %v, want %s", all, want)
	}
	r = tr.do("GET", "/v2/r/tags/list?last=v7", nil)
	if err := json.Unmarshal(r.body, &tl); err != nil || strings.Join(tl.Tags, " ") != "v8 v9" || r.header.Get("Link") != "" {
		t.Fatalf("last=v7: %s %v", r.body, r.header)
	}
	r = tr.do("GET", "/v2/r/tags/list?n=0", nil)
	tr.expect(r, 200, "")
	if err := json.Unmarshal(r.body, &tl); err != nil || tl.Tags == nil || len(tl.Tags) != 0 {
		t.Fatalf("n=0: %s", r.body)
	}
	tr.expect(tr.do("GET", "/v2/r/tags/list?n=-1", nil), 400, "UNSUPPORTED")
	tr.expect(tr.do("GET", "/v2/r/tags/list?n=x", nil), 400, "UNSUPPORTED")
	tr.expect(tr.do("GET", "/v2/r/tags/list?n=-99999999999999999999", nil), 400, "UNSUPPORTED")
	// A non-negative n past int is capped like any large n (it was
	// refused): the page is the one without n, the most a page holds.
	r = tr.do("GET", "/v2/r/tags/list?n=99999999999999999999", nil)
	tr.expect(r, 200, "")
	if full := tr.do("GET", "/v2/r/tags/list", nil); !bytes.Equal(r.body, full.body) {
		t.Fatalf("n past int: %s, without n: %s", r.body, full.body)
	}
	tr.expect(tr.do("GET", "/v2/missing/tags/list", nil), 404, "NAME_UNKNOWN")

	for _, repo := range []string{"b", "a/b", "c", "a", "d/e/f", "e", "f"} {
		tr.pushBlob(repo, []byte(repo))
	}
	var names []string
	next = "/v2/_catalog?n=3"
	for next != "" {
		r := tr.do("GET", next, nil)
		tr.expect(r, 200, "")
		var c struct{ Repositories []string }
		if err := json.Unmarshal(r.body, &c); err != nil {
			t.Fatal(err)
		}
		names = append(names, c.Repositories...)
		next = ""
		if l := r.header.Get("Link"); l != "" {
			next = l[1:strings.Index(l, ">")]
		}
	}
	if got := strings.Join(names, " "); got != "a a/b b c d/e/f e f r" {
		t.Fatalf("catalog %q", got)
	}
}

func TestDeleteSemantics(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	img := newImage(t, "del")
	tr.push("r", "v1", img)
	tr.expect(tr.do("PUT", "/v2/r/manifests/v2", img.manifest, "Content-Type", ociManifest), 201, "")
	// Deleting a tag removes only the tag.
	tr.expect(tr.do("DELETE", "/v2/r/manifests/v1", nil), 202, "")
	tr.expect(tr.do("GET", "/v2/r/manifests/v1", nil), 404, "MANIFEST_UNKNOWN")
	tr.pull("r", "v2", img)
	tr.pull("r", img.digest.String(), img)
	tr.expect(tr.do("DELETE", "/v2/r/manifests/v1", nil), 404, "MANIFEST_UNKNOWN")
	// Deleting the manifest removes it and its tags.
	tr.expect(tr.do("DELETE", "/v2/r/manifests/"+img.digest.String(), nil), 202, "")
	tr.expect(tr.do("HEAD", "/v2/r/manifests/"+img.digest.String(), nil), 404, "")
	tr.expect(tr.do("GET", "/v2/r/manifests/v2", nil), 404, "MANIFEST_UNKNOWN")
	tr.expect(tr.do("DELETE", "/v2/r/manifests/"+img.digest.String(), nil), 404, "MANIFEST_UNKNOWN")
}

func TestReferrers(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	subject := newImage(t, "subject")
	tr.push("r", "v1", subject)
	empty := []byte("{}")
	tr.pushBlob("r", empty)
	art := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","artifactType":"application/vnd.example.sbom","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2}],"subject":{"mediaType":"%s","digest":"%s","size":%d},"annotations":{"k":"v"}}`,
		ociManifest, digest.FromBytes(empty), digest.FromBytes(empty), ociManifest, subject.digest, len(subject.manifest))
	ad := digest.FromString(art)
	r := tr.do("PUT", "/v2/r/manifests/"+ad.String(), art, "Content-Type", ociManifest)
	tr.expect(r, 201, "")
	if r.header.Get("OCI-Subject") != subject.digest.String() {
		t.Fatalf("OCI-Subject %q", r.header.Get("OCI-Subject"))
	}
	r = tr.do("GET", "/v2/r/referrers/"+subject.digest.String(), nil)
	tr.expect(r, 200, "")
	if r.header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("referrers content type %q", r.header.Get("Content-Type"))
	}
	var idx struct {
		SchemaVersion int
		MediaType     string
		Manifests     []struct {
			MediaType, ArtifactType string
			Digest                  digest.Digest
			Size                    int64
			Annotations             map[string]string
		}
	}
	if err := json.Unmarshal(r.body, &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("referrers: %s", r.body)
	}
	got := idx.Manifests[0]
	if got.Digest != ad || got.Size != int64(len(art)) || got.ArtifactType != "application/vnd.example.sbom" || got.Annotations["k"] != "v" || got.MediaType != ociManifest {
		t.Fatalf("referrer descriptor %+v", got)
	}
	r = tr.do("GET", "/v2/r/referrers/"+subject.digest.String()+"?artifactType=application/other", nil)
	tr.expect(r, 200, "")
	if r.header.Get("OCI-Filters-Applied") != "artifactType" || !strings.Contains(string(r.body), `"manifests":[]`) {
		t.Fatalf("filtered referrers: %s %v", r.body, r.header)
	}
	r = tr.do("GET", "/v2/never-pushed/referrers/"+subject.digest.String(), nil)
	tr.expect(r, 200, "")
	if !strings.Contains(string(r.body), `"manifests":[]`) {
		t.Fatalf("empty referrers: %s", r.body)
	}
	tr.expect(tr.do("GET", "/v2/r/referrers/sha256:nope", nil), 400, "DIGEST_INVALID")
}

func TestBlobSizeCap(t *testing.T) {
	tr := newTestRegistry(t, Options{MaxBlobBytes: 1000})
	data := bytes.Repeat([]byte("x"), 1001)
	d := digest.FromBytes(data)
	tr.expect(tr.do("POST", "/v2/r/blobs/uploads/?digest="+d.String(), data), 413, "SIZE_INVALID")
	tr.expect(tr.do("POST", "/v2/r/blobs/uploads/?digest="+d.String(), bytes.NewReader(data)), 413, "SIZE_INVALID")
	r := tr.do("POST", "/v2/r/blobs/uploads/", nil)
	loc := r.header.Get("Location")
	tr.expect(tr.do("PATCH", loc, data[:600]), 202, "")
	// The cap holds across chunks, streamed or not (V2).
	tr.expect(tr.do("PATCH", loc, bytes.NewReader(data[600:])), 413, "SIZE_INVALID")
	r = tr.do("GET", loc, nil)
	if r.header.Get("Range") != "0-599" {
		t.Fatalf("upload grew past a refused chunk: %v", r.header)
	}
	tr.expect(tr.do("HEAD", "/v2/r/blobs/"+d.String(), nil), 404, "")
}

func TestReferrersPaging(t *testing.T) {
	tr := newTestRegistry(t, Options{PageMax: 3})
	subject := newImage(t, "subject")
	tr.push("r", "v1", subject)
	empty := []byte("{}")
	tr.pushBlob("r", empty)
	want := map[digest.Digest]bool{}
	for i := 0; i < 7; i++ {
		art := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","artifactType":"application/vnd.example.sig","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[],"subject":{"mediaType":"%s","digest":"%s","size":%d},"annotations":{"i":"%d"}}`,
			ociManifest, digest.FromBytes(empty), ociManifest, subject.digest, len(subject.manifest), i)
		tr.expect(tr.do("PUT", "/v2/r/manifests/sig"+fmt.Sprint(i), art, "Content-Type", ociManifest), 201, "")
		want[digest.FromString(art)] = true
	}
	got := map[digest.Digest]bool{}
	next := "/v2/r/referrers/" + subject.digest.String() + "?n=1000&artifactType=application/vnd.example.sig"
	pages := 0
	for next != "" {
		r := tr.do("GET", next, nil)
		tr.expect(r, 200, "")
		var idx struct {
			Manifests []struct{ Digest digest.Digest }
		}
		if err := json.Unmarshal(r.body, &idx); err != nil || len(idx.Manifests) > 3 {
			t.Fatalf("page %s: %s", next, r.body)
		}
		for _, m := range idx.Manifests {
			if got[m.Digest] {
				t.Fatalf("referrer %s listed twice", m.Digest)
			}
			got[m.Digest] = true
		}
		next = ""
		if l := r.header.Get("Link"); l != "" {
			next = l[1:strings.Index(l, ">")]
		}
		pages++
	}
	if len(got) != len(want) || pages != 3 {
		t.Fatalf("paged referrers: %d of %d in %d pages", len(got), len(want), pages)
	}
}

// TestStalledUploadReleasesSession: a client that sends part of a chunk and
// then nothing, keeping its connection open, loses the request after the
// idle timeout; the session's lock is released and the upload is unchanged.
func TestStalledUploadReleasesSession(t *testing.T) {
	tr := newTestRegistry(t, Options{BodyIdleTimeout: 100 * time.Millisecond})
	r := tr.do("POST", "/v2/r/blobs/uploads/", nil)
	loc := r.header.Get("Location")
	conn, err := net.Dial("tcp", strings.TrimPrefix(tr.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nContent-Range: 0-999\r\n\r\n0123456789", loc)
	// The server answers the stalled request once the body has been idle
	// too long; nothing is recorded.
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled upload: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Fatalf("stalled upload answered %d", resp.StatusCode)
	}
	r = tr.do("GET", loc, nil)
	tr.expect(r, 204, "")
	if r.header.Get("Range") != "0-0" {
		t.Fatalf("a stalled chunk was recorded: %v", r.header)
	}
	tr.expect(tr.do("DELETE", loc, nil), 204, "")
}

// TestUploadDataLost: a session whose data file vanished answers
// BLOB_UPLOAD_UNKNOWN (start again), not BLOB_UNKNOWN, and is ended.
func TestUploadDataLost(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	r := tr.do("POST", "/v2/r/blobs/uploads/", nil)
	loc := r.header.Get("Location")
	tr.expect(tr.do("PATCH", loc, []byte("some bytes"), "Content-Range", "0-9"), 202, "")
	id := loc[strings.LastIndex(loc, "/")+1:]
	if err := tr.reg.blobs.(interface {
		AbortUpload(context.Context, string) error
	}).AbortUpload(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	tr.expect(tr.do("PATCH", loc, []byte("more"), "Content-Range", "10-13"), 404, "BLOB_UPLOAD_UNKNOWN")
	tr.expect(tr.do("GET", loc, nil), 404, "BLOB_UPLOAD_UNKNOWN")
}

type refreshRecorder struct {
	Meta
	calls []time.Time
}

func (r *refreshRecorder) RefreshLink(ctx context.Context, repo string, d digest.Digest, olderThan time.Time) error {
	r.calls = append(r.calls, olderThan)
	return r.Meta.RefreshLink(ctx, repo, d, olderThan)
}

// TestHeadRefreshesLink: a blob HEAD (a pusher deciding to skip an upload)
// asks the store to renew a link older than LinkRefreshAfter; GET does not.
func TestHeadRefreshesLink(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	rec := &refreshRecorder{Meta: tr.reg.meta}
	tr.reg.meta = rec
	tr.reg.opts.LinkRefreshAfter = time.Hour
	d := tr.pushBlob("r", []byte("layer"))
	before := time.Now()
	tr.expect(tr.do("HEAD", "/v2/r/blobs/"+d.String(), nil), 200, "")
	tr.expect(tr.do("GET", "/v2/r/blobs/"+d.String(), nil), 200, "")
	if len(rec.calls) != 1 {
		t.Fatalf("RefreshLink called %d times, want once (HEAD only)", len(rec.calls))
	}
	if got := before.Sub(rec.calls[0]); got < 59*time.Minute || got > 61*time.Minute {
		t.Fatalf("RefreshLink olderThan is %v before the request, want about an hour", got)
	}
}

// failingRefresh fails every RefreshLink as a full disk would.
type failingRefresh struct{ Meta }

func (failingRefresh) RefreshLink(context.Context, string, digest.Digest, time.Time) error {
	return fmt.Errorf("refresh: %w", syscall.ENOSPC)
}

// TestHeadRefreshFindsLink: a pusher's HEAD learns whether the blob is
// linked from the renewal itself: unlinked is 404 BLOB_UNKNOWN, even
// where the blob is stored for another repository. A renewal that fails
// otherwise does not fail the HEAD of a linked blob (the link is checked
// alone), nor make an unlinked one visible.
func TestHeadRefreshFindsLink(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	tr.reg.opts.LinkRefreshAfter = time.Hour
	d := tr.pushBlob("r", []byte("layer"))
	tr.expect(tr.do("HEAD", "/v2/r/blobs/"+d.String(), nil), 200, "")
	tr.expect(tr.do("HEAD", "/v2/other/blobs/"+d.String(), nil), 404, "")
	tr.expect(tr.do("GET", "/v2/other/blobs/"+d.String(), nil), 404, "BLOB_UNKNOWN")

	tr.reg.meta = failingRefresh{tr.reg.meta}
	tr.expect(tr.do("HEAD", "/v2/r/blobs/"+d.String(), nil), 200, "")
	tr.expect(tr.do("HEAD", "/v2/other/blobs/"+d.String(), nil), 404, "")
}
