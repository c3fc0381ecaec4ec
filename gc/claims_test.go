package gc

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/blob/fs"
	"github.com/berth-dev/berth/meta"
)

// faultyBlobs is the blob store with faults in Delete that a real
// filesystem won't produce on demand: a Delete of stall blocks (once)
// until release is closed, after closing stalled; a Delete of fail fails.
type faultyBlobs struct {
	*fs.Store
	stall    digest.Digest
	stalled  chan struct{}
	release  chan struct{}
	once     sync.Once
	fail     digest.Digest
	failures int
}

func (b *faultyBlobs) Delete(ctx context.Context, d digest.Digest) error {
	if d == b.stall {
		b.once.Do(func() {
			close(b.stalled)
			<-b.release
		})
	}
	if d == b.fail {
		b.failures++
		return &os.PathError{Op: "remove", Path: string(d), Err: os.ErrPermission}
	}
	return b.Store.Delete(ctx, d)
}

// garbage pushes data into repo and unlinks it, as a deleted layer.
func (e *env) garbage(repo string, data []byte) digest.Digest {
	e.t.Helper()
	e.pushBlob(repo, data)
	d := digest.FromBytes(data)
	if err := e.meta.UnlinkBlob(e.t.Context(), repo, d); err != nil {
		e.t.Fatal(err)
	}
	return d
}

// pushCode is the status of a monolithic push of data into repo.
func (e *env) pushCode(repo string, data []byte) int {
	e.t.Helper()
	code, body, err := e.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(data).String(), data, "")
	if err != nil {
		e.t.Fatal(err)
	}
	if code != http.StatusCreated && code != http.StatusServiceUnavailable {
		e.t.Fatalf("push: %d %s", code, body)
	}
	return code
}

// TestTwoCollectors is two collectors at once (berth serve's hourly run
// and `berth gc`, say). B claims blob X and stalls before deleting its
// bytes. A runs meanwhile: it must not get X (it would delete X and drop
// its row, the client would push X again and be acknowledged, and B would
// then delete the fresh bytes). A push of X while B holds it is refused;
// after B finishes it succeeds, and every acknowledged push keeps its
// bytes.
func TestTwoCollectors(t *testing.T) {
	e := newEnv(t)
	data := []byte("blob X, deleted and pushed again")
	x := e.garbage("app", data)
	pol := Policy{Grace: time.Hour}
	slow := &faultyBlobs{Store: e.blobs, stall: x, stalled: make(chan struct{}), release: make(chan struct{})}
	b := New(e.meta, slow, pol, nil)
	b.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	a := e.collector(pol, 2*time.Hour)

	type result struct {
		r   Report
		err error
	}
	bDone := make(chan result, 1)
	go func() {
		r, err := b.Run(context.Background(), false)
		bDone <- result{r, err}
	}()
	<-slow.stalled // B holds X and is deleting its bytes

	ra := e.run(a, false)
	if ra.Blobs != 0 || ra.Held != 1 {
		t.Errorf("A's report = %+v; want X left to B (held)", ra)
	}
	acked := e.pushCode("app", data) == http.StatusCreated
	if acked {
		t.Error("push of X acknowledged while B holds it")
	}
	close(slow.release)
	rb := <-bDone
	if rb.err != nil || rb.r.Blobs != 1 {
		t.Errorf("B's run = %+v, %v; want X deleted", rb.r, rb.err)
	}
	if acked && !e.hasFile(data) {
		t.Fatal("B deleted the bytes of an acknowledged push")
	}
	if e.hasFile(data) {
		t.Error("X's bytes left after B's run")
	}
	if code := e.pushCode("app", data); code != http.StatusCreated {
		t.Fatalf("push of X after B's run = %d", code)
	}
	img := newImage("x", nil, data)
	e.push("app", "v1", img)
	pulls(t, e, "app", "v1", img)
}

// TestDeleteFailure: a blob file that cannot be deleted is counted and
// reported, and does not stop the run: the other blobs, orphan files and
// expired uploads still go. Its tombstone stays (pushes of it are refused)
// until the lease of the failed run has ended and FinishTombstones, as
// RunEvery calls it then, finishes it.
func TestDeleteFailure(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	stuck := []byte("a blob whose file cannot be deleted")
	x := e.garbage("app", stuck)
	e.garbage("app", []byte("a blob that goes"))
	orphan := commitOnly(t, e, "00000000000000000000000000000001", []byte("old orphan"))
	age(t, e, orphan, 3*time.Hour)
	const upload = "0000000000000000000000000000000a"
	w, err := e.blobs.Upload(ctx, upload, blob.UploadState{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	w.Close()
	old := time.Now().Add(-48 * time.Hour)
	if err := e.meta.CreateUpload(ctx, meta.Upload{ID: upload, Repo: "app", Created: old, Updated: old}); err != nil {
		t.Fatal(err)
	}

	faulty := &faultyBlobs{Store: e.blobs, fail: x}
	pol := Policy{Grace: time.Hour, UploadExpireAfter: time.Hour}
	skew := 2 * time.Hour
	c := New(e.meta, faulty, pol, nil)
	c.now = func() time.Time { return time.Now().Add(skew) }
	began := c.now()
	r, err := c.Run(ctx, false)
	if err == nil || !strings.Contains(err.Error(), x.String()) || !errors.Is(err, os.ErrPermission) {
		t.Errorf("Run error = %v; want the failed delete of %s", err, x)
	}
	if r.Failed != 1 || r.Blobs != 1 || r.OrphanFiles != 1 || r.Uploads != 1 {
		t.Errorf("report = %+v; want 1 failed, 1 blob, 1 orphan file, 1 upload", r)
	}
	if !e.hasFile(stuck) {
		t.Error("the stuck file is gone")
	}
	if rec, err := e.meta.BlobRecord(ctx, x); err != nil || !rec.Deleting {
		t.Errorf("stuck blob's row = %+v, %v; want its tombstone", rec, err)
	}
	if at := c.retryAt(); at.Before(began.Add(meta.DefaultClaimLease)) || at.After(c.now().Add(meta.DefaultClaimLease)) {
		t.Errorf("retry at %v, want when the lease ends (%v)", at, began.Add(meta.DefaultClaimLease))
	}
	if code := e.pushCode("app", stuck); code != http.StatusServiceUnavailable {
		t.Errorf("push of the stuck blob = %d, want 503 while its tombstone stays", code)
	}

	// A second run within the lease leaves the tombstone (it cannot tell
	// the first run from one still going) and collects the rest.
	e.garbage("app", []byte("more garbage"))
	r, err = c.Run(ctx, false)
	if err != nil || r.Failed != 0 || r.Held != 1 || r.Blobs != 1 {
		t.Errorf("second run = %+v, %v; want the stuck one held and the new one deleted", r, err)
	}

	// The file becomes deletable; once the lease ends the tombstone is
	// finished, and the blob can be pushed.
	faulty.fail = ""
	skew += meta.DefaultClaimLease + time.Minute
	r, err = c.FinishTombstones(ctx)
	if err != nil || r.Blobs != 1 || r.Failed != 0 {
		t.Errorf("FinishTombstones = %+v, %v; want the stuck blob finished", r, err)
	}
	if !c.retryAt().IsZero() {
		t.Errorf("retry at %v after everything was finished", c.retryAt())
	}
	if e.hasFile(stuck) {
		t.Error("stuck file still there")
	}
	if code := e.pushCode("app", stuck); code != http.StatusCreated {
		t.Errorf("push after FinishTombstones = %d", code)
	}
}

// TestFinishTombstones: tombstones of a crashed run whose lease has ended
// are finished; those of a run still within its lease are left to it, and
// the collector notes when to try them again; no live row is touched,
// however old and unlinked.
func TestFinishTombstones(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	crashedData, heldData, liveData := []byte("crashed run's"), []byte("live run's"), []byte("unlinked, not claimed")
	crashed := commitOnly(t, e, "00000000000000000000000000000001", crashedData)
	held := commitOnly(t, e, "00000000000000000000000000000002", heldData)
	live := e.garbage("app", liveData)
	now := time.Now()
	if got, err := e.meta.ClaimBlobs(ctx, []meta.BlobRecord{{Digest: crashed, Size: int64(len(crashedData))}}, now, meta.Claim{Token: "crashed", At: now.Add(-time.Hour), Lease: time.Minute}); len(got) != 1 || err != nil {
		t.Fatal(got, err)
	}
	running := meta.Claim{Token: "running", At: now, Lease: time.Hour}
	if got, err := e.meta.ClaimBlobs(ctx, []meta.BlobRecord{{Digest: held, Size: 1}}, now, running); len(got) != 1 || err != nil {
		t.Fatal(got, err)
	}
	if code := e.pushCode("app", crashedData); code != http.StatusServiceUnavailable {
		t.Fatalf("push of a tombstone = %d, want 503", code)
	}

	c := e.collector(Policy{Grace: 0}, 0)
	r, err := c.FinishTombstones(ctx)
	if err != nil || r.Blobs != 1 || r.Held != 1 || r.BytesFreed != int64(len(crashedData)) {
		t.Errorf("FinishTombstones = %+v, %v; want the crashed run's finished, the live run's held", r, err)
	}
	if e.hasFile(crashedData) || !e.hasFile(heldData) || !e.hasFile(liveData) {
		t.Error("wrong files deleted")
	}
	if rec, err := e.meta.BlobRecord(ctx, live); err != nil || rec.Deleting {
		t.Errorf("live row = %+v, %v", rec, err)
	}
	if want := running.At.Add(running.Lease); !c.retryAt().Equal(want) {
		t.Errorf("retry at %v, want %v (the live run's lease)", c.retryAt(), want)
	}
	if code := e.pushCode("app", crashedData); code != http.StatusCreated {
		t.Errorf("push after FinishTombstones = %d, want 201", code)
	}
	if code := e.pushCode("app", heldData); code != http.StatusServiceUnavailable {
		t.Errorf("push of a blob a live run holds = %d, want 503", code)
	}
}

// TestUploadBeingWritten: a session whose row has not been updated for
// longer than the expiry, but whose data a request is writing (a PATCH
// streaming for longer than the expiry, or one that has just resumed the
// session), is not expired under it.
func TestUploadBeingWritten(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	const id = "0000000000000000000000000000000a"
	old := time.Now().Add(-48 * time.Hour)
	if err := e.meta.CreateUpload(ctx, meta.Upload{ID: id, Repo: "app", Created: old, Updated: old}); err != nil {
		t.Fatal(err)
	}
	// The request in flight: the writer is open and has written.
	w, err := e.blobs.Upload(ctx, id, blob.UploadState{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("first chunk")); err != nil {
		t.Fatal(err)
	}
	r := e.run(e.collector(Policy{Grace: time.Hour, UploadExpireAfter: day}, 0), false)
	if r.Uploads != 0 || r.UploadData != 0 {
		t.Errorf("report = %+v; want the session being written kept", r)
	}
	if known, err := e.meta.UploadKnown(ctx, id); !known || err != nil {
		t.Errorf("session expired under a request writing it: %v, %v", known, err)
	}
	if _, err := os.Stat(filepath.Join(e.blobs.Root(), "uploads", id)); err != nil {
		t.Errorf("upload data removed under a request writing it: %v", err)
	}
	if _, err := w.Write([]byte(", second chunk")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.State(); err != nil {
		t.Fatal(err)
	}

	// Idle once its data is old too.
	if err := os.Chtimes(filepath.Join(e.blobs.Root(), "uploads", id), old, old); err != nil {
		t.Fatal(err)
	}
	r = e.run(e.collector(Policy{Grace: time.Hour, UploadExpireAfter: day}, 0), false)
	if r.Uploads != 1 {
		t.Errorf("report = %+v; want the idle session expired", r)
	}
}
