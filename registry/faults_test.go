package registry

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob/fs"
	"github.com/berth-dev/berth/internal/faults"
	"github.com/berth-dev/berth/internal/testutil"
)

// faultRegistry is a testRegistry whose stores fail as in says.
type faultRegistry struct {
	*testRegistry
	in    *faults.Injector
	blobs *fs.Store // the real store under the wrapper
}

func newFaultRegistry(t *testing.T) *faultRegistry {
	t.Helper()
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	blobs, md := testutil.Stores(t, dir, logger)
	in := faults.New()
	reg := New(faults.Blobs(blobs, in), faults.Meta(md, in), Options{}, logger)
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return &faultRegistry{testRegistry: &testRegistry{t: t, srv: srv, reg: reg}, in: in, blobs: blobs}
}

// uploadFiles lists the data files of uploads not committed or aborted.
func (fr *faultRegistry) uploadFiles() []string {
	fr.t.Helper()
	var ids []string
	err := fr.blobs.WalkUploads(context.Background(), func(id string, _ time.Time) error {
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		fr.t.Fatal(err)
	}
	return ids
}

func (fr *faultRegistry) expectNoUploadFiles() {
	fr.t.Helper()
	if ids := fr.uploadFiles(); len(ids) != 0 {
		fr.t.Fatalf("upload data left behind: %v", ids)
	}
}

// expectNotServed checks that d is not readable from repo (GET and HEAD).
func (fr *faultRegistry) expectNotServed(repo string, d digest.Digest) {
	fr.t.Helper()
	fr.expect(fr.do("GET", "/v2/"+repo+"/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
	fr.expect(fr.do("HEAD", "/v2/"+repo+"/blobs/"+d.String(), nil), http.StatusNotFound, "")
}

// expectInternal checks a 500 with the spec's error body.
func (fr *faultRegistry) expectInternal(r resp) {
	fr.t.Helper()
	fr.expect(r, http.StatusInternalServerError, "UNKNOWN")
}

// expectNoSpace checks the full-disk answer: 507 BLOB_UPLOAD_INVALID.
func (fr *faultRegistry) expectNoSpace(r resp) {
	fr.t.Helper()
	fr.expect(r, http.StatusInsufficientStorage, string(CodeBlobUploadInvalid))
	if !bytes.Contains(r.body, []byte("insufficient storage")) {
		fr.t.Fatalf("507 body does not say why: %s", r.body)
	}
}

// startSession opens an upload session and returns its location.
func (fr *faultRegistry) startSession(repo string) string {
	fr.t.Helper()
	r := fr.do("POST", "/v2/"+repo+"/blobs/uploads/", nil)
	fr.expect(r, http.StatusAccepted, "")
	return r.header.Get("Location")
}

func (fr *faultRegistry) patch(loc string, start int, chunk []byte) resp {
	fr.t.Helper()
	cr := strconv.Itoa(start) + "-" + strconv.Itoa(start+len(chunk)-1)
	return fr.do("PATCH", loc, chunk, "Content-Range", cr, "Content-Type", "application/octet-stream")
}

func (fr *faultRegistry) putDigest(loc string, d digest.Digest) resp {
	fr.t.Helper()
	return fr.do("PUT", loc+"?digest="+d.String(), nil)
}

// TestFaultCommit: a commit that fails leaves nothing visible and nothing
// behind; the store takes the same push right after.
func TestFaultCommit(t *testing.T) {
	fr := newFaultRegistry(t)
	data := []byte("commit fails once")
	d := digest.FromBytes(data)

	fr.in.FailNth("blob.Commit", 1, syscall.EIO)
	fr.expectInternal(fr.do("POST", "/v2/r/blobs/uploads/?digest="+d.String(), data))
	fr.expectNotServed("r", d)
	fr.expectNoUploadFiles()
	if _, err := fr.blobs.Stat(context.Background(), d); err == nil {
		t.Fatal("failed commit left the blob in the store")
	}
	fr.pushBlob("r", data)

	// Chunked: a failed commit keeps the session, and completing it again
	// works.
	data2 := []byte("chunked commit fails once")
	d2 := digest.FromBytes(data2)
	loc := fr.startSession("r")
	fr.expect(fr.patch(loc, 0, data2), http.StatusAccepted, "")
	fr.in.FailNth("blob.Commit", 1, syscall.EIO)
	fr.expectInternal(fr.putDigest(loc, d2))
	fr.expectNotServed("r", d2)
	fr.expect(fr.putDigest(loc, d2), http.StatusCreated, "")
	r := fr.do("GET", "/v2/r/blobs/"+d2.String(), nil)
	fr.expect(r, http.StatusOK, "")
	if !bytes.Equal(r.body, data2) {
		t.Fatalf("blob after retried commit: %q", r.body)
	}
	fr.expectNoUploadFiles()
}

// TestFaultCommitNoSpace: a commit that finds the disk full (fsync can
// report ENOSPC) ends the session with 507 and removes its data.
func TestFaultCommitNoSpace(t *testing.T) {
	fr := newFaultRegistry(t)
	data := []byte("sync finds the disk full")
	d := digest.FromBytes(data)
	loc := fr.startSession("r")
	fr.expect(fr.patch(loc, 0, data), http.StatusAccepted, "")
	fr.in.FailNth("blob.Commit", 1, syscall.ENOSPC)
	fr.expectNoSpace(fr.putDigest(loc, d))
	fr.expectNotServed("r", d)
	fr.expectNoUploadFiles()
	fr.expect(fr.do("GET", loc, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	fr.pushBlob("r", data)
}

// TestFaultLinkAfterCommit: bytes committed but not linked are not served
// (they are an orphan for gc); pushing again links them.
func TestFaultLinkAfterCommit(t *testing.T) {
	fr := newFaultRegistry(t)
	img := newImage(t, "link")
	d := digest.FromBytes(img.layer)

	fr.in.FailNth("meta.LinkBlob", 1, nil)
	fr.expectInternal(fr.do("POST", "/v2/r/blobs/uploads/?digest="+d.String(), img.layer))
	fr.expectNotServed("r", d)
	fr.expectNoUploadFiles()
	// A manifest can't reference it either.
	fr.pushBlob("r", img.config)
	r := fr.do("PUT", "/v2/r/manifests/v1", img.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	fr.expect(r, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")

	fr.push("r", "v1", img)
	fr.pull("r", "v1", img)

	// The same through a chunked upload, whose link is made with the
	// session's removal (FinishUpload): the session is over (its data
	// became the blob), and the blob is not served until pushed again.
	data := []byte("chunked, link fails")
	d2 := digest.FromBytes(data)
	loc := fr.startSession("r")
	fr.expect(fr.patch(loc, 0, data), http.StatusAccepted, "")
	fr.in.FailNth("meta.FinishUpload", 1, nil)
	fr.expectInternal(fr.putDigest(loc, d2))
	fr.expectNotServed("r", d2)
	fr.expect(fr.do("GET", loc, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	fr.pushBlob("r", data)
	fr.expectNoUploadFiles()
}

// TestFaultPutManifest: a manifest whose transaction fails is not served,
// by digest or by tag, and is not listed.
func TestFaultPutManifest(t *testing.T) {
	fr := newFaultRegistry(t)
	old := newImage(t, "old")
	fr.push("r", "old", old)
	img := newImage(t, "new")
	fr.pushBlob("r", img.config)
	fr.pushBlob("r", img.layer)

	put := func() resp {
		return fr.do("PUT", "/v2/r/manifests/v1", img.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	}
	fr.in.FailNth("meta.PutManifest", 1, nil)
	fr.expectInternal(put())
	// A metadata store that finds the disk full (SQLITE_FULL, mapped to
	// ENOSPC by meta/sqlite) answers 507.
	fr.in.FailNth("meta.PutManifest", 1, syscall.ENOSPC)
	fr.expectNoSpace(put())

	fr.expect(fr.do("GET", "/v2/r/manifests/v1", nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	fr.expect(fr.do("GET", "/v2/r/manifests/"+img.digest.String(), nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	r := fr.do("GET", "/v2/r/tags/list", nil)
	fr.expect(r, http.StatusOK, "")
	if bytes.Contains(r.body, []byte("v1")) {
		t.Fatalf("tag of a failed push listed: %s", r.body)
	}
	fr.pull("r", "old", old)

	fr.expect(put(), http.StatusCreated, "")
	fr.pull("r", "v1", img)
}

// TestFaultUpdateUpload: a chunk whose progress was not recorded is not
// acknowledged; the session stays at its last acknowledged offset, and
// sending the chunk again works (the unrecorded bytes are discarded).
func TestFaultUpdateUpload(t *testing.T) {
	fr := newFaultRegistry(t)
	a, b := []byte("first chunk, "), []byte("second chunk")
	whole := append(append([]byte{}, a...), b...)
	d := digest.FromBytes(whole)
	loc := fr.startSession("r")
	fr.expect(fr.patch(loc, 0, a), http.StatusAccepted, "")

	fr.in.FailNth("meta.UpdateUpload", 1, nil)
	fr.expectInternal(fr.patch(loc, len(a), b))
	r := fr.do("GET", loc, nil)
	fr.expect(r, http.StatusNoContent, "")
	if got, want := r.header.Get("Range"), "0-"+strconv.Itoa(len(a)-1); got != want {
		t.Fatalf("Range after a failed chunk: %q, want %q", got, want)
	}
	fr.expect(fr.patch(loc, len(a), b), http.StatusAccepted, "")
	fr.expect(fr.putDigest(loc, d), http.StatusCreated, "")
	r = fr.do("GET", "/v2/r/blobs/"+d.String(), nil)
	fr.expect(r, http.StatusOK, "")
	if !bytes.Equal(r.body, whole) {
		t.Fatalf("blob after a retried chunk: %q", r.body)
	}
	fr.expectNoUploadFiles()
}

// TestFaultTornWrite: a write that lands half its bytes and fails is not
// acknowledged; a monolithic upload leaves nothing, a chunk can be sent
// again.
func TestFaultTornWrite(t *testing.T) {
	fr := newFaultRegistry(t)
	data := bytes.Repeat([]byte("torn "), 1000)
	d := digest.FromBytes(data)

	fr.in.TornWrite(1)
	fr.expectInternal(fr.do("POST", "/v2/r/blobs/uploads/?digest="+d.String(), data))
	fr.expectNotServed("r", d)
	fr.expectNoUploadFiles()

	loc := fr.startSession("r")
	fr.expect(fr.patch(loc, 0, data[:100]), http.StatusAccepted, "")
	fr.in.TornWrite(1)
	fr.expectInternal(fr.patch(loc, 100, data[100:]))
	fr.expect(fr.patch(loc, 100, data[100:]), http.StatusAccepted, "")
	fr.expect(fr.putDigest(loc, d), http.StatusCreated, "")
	r := fr.do("GET", "/v2/r/blobs/"+d.String(), nil)
	fr.expect(r, http.StatusOK, "")
	if !bytes.Equal(r.body, data) {
		t.Fatal("blob after a torn chunk and its retry differs")
	}
}

// TestFaultNoSpace: the disk fills up during uploads. The client gets 507
// BLOB_UPLOAD_INVALID, the partial data goes (the session too), what was
// stored stays readable, and once space is freed pushes work again.
func TestFaultNoSpace(t *testing.T) {
	fr := newFaultRegistry(t)
	stored := newImage(t, "stored")
	fr.push("r", "stored", stored)

	big := bytes.Repeat([]byte("x"), 1<<20)
	d := digest.FromBytes(big)
	fr.in.NoSpaceAfter(300 << 10)
	fr.expectNoSpace(fr.do("POST", "/v2/r/blobs/uploads/?digest="+d.String(), big))
	fr.expectNotServed("r", d)
	fr.expectNoUploadFiles()

	// Chunked: the first chunk fits, the second fills the disk.
	fr.in.NoSpaceAfter(300 << 10)
	loc := fr.startSession("r")
	fr.expect(fr.patch(loc, 0, big[:200<<10]), http.StatusAccepted, "")
	fr.expectNoSpace(fr.patch(loc, 200<<10, big[200<<10:]))
	fr.expectNoUploadFiles()
	fr.expect(fr.do("GET", loc, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	fr.expectNotServed("r", d)

	// The last chunk, sent with the completing PUT.
	fr.in.NoSpaceAfter(100 << 10)
	loc = fr.startSession("r")
	fr.expectNoSpace(fr.do("PUT", loc+"?digest="+d.String(), big, "Content-Type", "application/octet-stream"))
	fr.expectNoUploadFiles()
	fr.expectNotServed("r", d)

	fr.pull("r", "stored", stored)

	fr.in.NoSpaceAfter(-1) // space freed
	fr.pushBlob("r", big)
	loc = fr.startSession("r")
	fr.expect(fr.patch(loc, 0, big[:200<<10]), http.StatusAccepted, "")
	fr.expect(fr.patch(loc, 200<<10, big[200<<10:]), http.StatusAccepted, "")
	fr.expect(fr.putDigest(loc, d), http.StatusCreated, "")
	fr.push("r", "after", newImage(t, "after"))
	fr.expectNoUploadFiles()
}

// TestFaultLatency: slow metadata does not let two writes to one session
// interleave: the second chunk, sent for the same offset while the first is
// recorded, is refused, and the blob is exactly the first.
func TestFaultLatency(t *testing.T) {
	fr := newFaultRegistry(t)
	fr.in.Latency("meta.UpdateUpload", 200*time.Millisecond)
	loc := fr.startSession("r")
	a, b := []byte("aaaa"), []byte("bbbb")
	done := make(chan resp)
	go func() {
		// fr.do calls t.Fatal only on transport errors; none are expected.
		done <- fr.patch(loc, 0, a)
	}()
	time.Sleep(50 * time.Millisecond)
	second := fr.patch(loc, 0, b)
	first := <-done
	ok := 0
	for _, r := range []resp{first, second} {
		switch r.status {
		case http.StatusAccepted:
			ok++
		case http.StatusRequestedRangeNotSatisfiable:
		default:
			t.Fatalf("concurrent chunk: %d %s", r.status, r.body)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of two chunks for the same offset accepted", ok)
	}
	fr.in.Reset()
	want := a
	if second.status == http.StatusAccepted {
		want = b
	}
	fr.expect(fr.putDigest(loc, digest.FromBytes(want)), http.StatusCreated, "")
	if fr.in.Calls("meta.UpdateUpload") != 1 {
		t.Fatalf("UpdateUpload called %d times, want 1", fr.in.Calls("meta.UpdateUpload"))
	}
}
