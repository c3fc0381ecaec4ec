package gc

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/meta"
)

const day = 24 * time.Hour

var (
	layerA = []byte("layer A shared by everyone")
	layerB = []byte("layer B")
	layerC = []byte("layer C of the other repository")
)

// TestPlans pushes content through the registry, changes it as a client
// would, runs gc with a policy and a clock, and checks what was deleted
// (the report) and what is left (pulls and files).
func TestPlans(t *testing.T) {
	img1 := newImage("one", nil, layerA, layerB)
	img2 := newImage("two", nil, layerA, layerC)
	child1 := newImage("child1", nil, layerA)
	child2 := newImage("child2", nil, layerB)
	idx := newIndex(child1, child2)
	sig := newImage("sig", &img1, []byte("signature"))
	keep1 := Policy{Grace: time.Hour, UntaggedAfter: day}

	tests := []struct {
		name   string
		setup  func(e *env)
		pol    Policy
		skew   time.Duration // how far the gc clock is ahead
		want   Report        // Duration, Passes, DryRun not compared
		check  func(t *testing.T, e *env)
		dryRun bool
	}{{
		name:  "tagged images stay",
		setup: func(e *env) { e.push("app", "v1", img1); e.push("app", "v2", img2) },
		pol:   keep1, skew: 30 * day,
		check: func(t *testing.T, e *env) { pulls(t, e, "app", "v1", img1); pulls(t, e, "app", "v2", img2) },
	}, {
		name: "delete tag, untagged kept forever by default",
		setup: func(e *env) {
			e.push("app", "v1", img1)
			e.must("DELETE", "/v2/app/manifests/v1", nil, "", 202)
		},
		pol: Policy{Grace: time.Hour}, skew: 30 * day,
		check: func(t *testing.T, e *env) { pulls(t, e, "app", img1.digest.String(), img1) },
	}, {
		name: "delete tag, untagged retention",
		setup: func(e *env) {
			e.push("app", "v1", img1)
			e.must("DELETE", "/v2/app/manifests/v1", nil, "", 202)
		},
		pol: keep1, skew: 2 * day,
		want: Report{Manifests: 1, Links: 3, Blobs: 3, BytesFreed: img1.size()},
		check: func(t *testing.T, e *env) {
			gone(t, e, "app", img1.digest.String())
			if e.hasFile(layerA) {
				t.Error("layer A still stored")
			}
		},
	}, {
		name: "delete tag, untagged manifest younger than retention",
		setup: func(e *env) {
			e.push("app", "v1", img1)
			e.must("DELETE", "/v2/app/manifests/v1", nil, "", 202)
		},
		pol: keep1, skew: 2 * time.Hour,
		check: func(t *testing.T, e *env) { pulls(t, e, "app", img1.digest.String(), img1) },
	}, {
		name: "delete manifest: its blobs go after the grace period",
		setup: func(e *env) {
			e.push("app", "v1", img1)
			e.must("DELETE", "/v2/app/manifests/"+img1.digest.String(), nil, "", 202)
		},
		pol: Policy{Grace: time.Hour}, skew: 2 * time.Hour,
		want: Report{Links: 3, Blobs: 3, BytesFreed: img1.size()},
	}, {
		name: "delete manifest: within the grace period nothing goes",
		setup: func(e *env) {
			e.push("app", "v1", img1)
			e.must("DELETE", "/v2/app/manifests/"+img1.digest.String(), nil, "", 202)
		},
		pol: Policy{Grace: time.Hour}, skew: 0,
		check: func(t *testing.T, e *env) {
			if files, _ := e.files(); len(files) != 3 {
				t.Errorf("%d files left, want 3", len(files))
			}
		},
	}, {
		name: "blobs shared between repositories",
		setup: func(e *env) {
			e.push("a", "v1", img1)
			e.push("b", "v1", img1)
			e.push("b", "v2", img2)
			e.must("DELETE", "/v2/a/manifests/"+img1.digest.String(), nil, "", 202)
			e.must("DELETE", "/v2/b/manifests/v2", nil, "", 202)
		},
		pol: keep1, skew: 2 * day,
		// a's three links; b's img2 config and layer C links (layer A
		// stays, linked for b's img1).
		want: Report{Manifests: 1, Links: 5, Blobs: 2, BytesFreed: img2.size() - int64(len(layerA))},
		check: func(t *testing.T, e *env) {
			pulls(t, e, "b", "v1", img1)
			gone(t, e, "a", img1.digest.String())
			gone(t, e, "b", img2.digest.String())
			code, _, _ := e.do("GET", "/v2/a/blobs/"+digest.FromBytes(layerA).String(), nil, "")
			if code != 404 {
				t.Errorf("layer A still readable from a: %d", code)
			}
		},
	}, {
		name:  "index children stay while the index is kept",
		setup: func(e *env) { e.push("app", "", child1); e.push("app", "", child2); e.push("app", "multi", idx) },
		pol:   keep1, skew: 30 * day,
		check: func(t *testing.T, e *env) {
			pulls(t, e, "app", child1.digest.String(), child1)
			pulls(t, e, "app", child2.digest.String(), child2)
		},
	}, {
		name: "untagged index goes, then its children",
		setup: func(e *env) {
			e.push("app", "", child1)
			e.push("app", "", child2)
			e.push("app", "multi", idx)
			e.must("DELETE", "/v2/app/manifests/multi", nil, "", 202)
		},
		pol: keep1, skew: 2 * day,
		want: Report{Manifests: 3, Links: 4, Blobs: 4, BytesFreed: child1.size() + child2.size()},
	}, {
		name:  "referrers stay while their subject exists",
		setup: func(e *env) { e.push("app", "v1", img1); e.push("app", "", sig) },
		pol:   keep1, skew: 30 * day,
		check: func(t *testing.T, e *env) { pulls(t, e, "app", sig.digest.String(), sig) },
	}, {
		name: "referrers of a deleted subject go, even when untagged manifests are kept",
		setup: func(e *env) {
			e.push("app", "v1", img1)
			e.push("app", "", sig)
			e.must("DELETE", "/v2/app/manifests/"+img1.digest.String(), nil, "", 202)
		},
		pol: Policy{Grace: time.Hour}, skew: 2 * time.Hour,
		want: Report{Manifests: 1, Links: 5, Blobs: 5, BytesFreed: img1.size() + sig.size()},
	}, {
		name: "referrers of a deleted subject wait for the grace period",
		setup: func(e *env) {
			e.push("app", "v1", img1)
			e.push("app", "", sig)
			e.must("DELETE", "/v2/app/manifests/"+img1.digest.String(), nil, "", 202)
		},
		pol: Policy{Grace: time.Hour}, skew: 0,
		check: func(t *testing.T, e *env) { pulls(t, e, "app", sig.digest.String(), sig) },
	}, {
		name: "dry run deletes nothing",
		setup: func(e *env) {
			e.push("app", "v1", img1)
			e.must("DELETE", "/v2/app/manifests/"+img1.digest.String(), nil, "", 202)
		},
		pol: Policy{Grace: time.Hour}, skew: 2 * time.Hour, dryRun: true,
		// What the run would do: the links, then the blobs they freed.
		want: Report{Links: 3, Blobs: 3, BytesFreed: img1.size()},
		check: func(t *testing.T, e *env) {
			if files, _ := e.files(); len(files) != 3 {
				t.Errorf("%d files left, want 3", len(files))
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.setup(e)
			got := e.run(e.collector(tc.pol, tc.skew), tc.dryRun)
			got.Duration, got.Passes = 0, 0
			tc.want.DryRun = tc.dryRun
			if got != tc.want {
				t.Errorf("report = %+v\nwant     %+v", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, e)
			}
			if tc.dryRun {
				return
			}
			// A second run finds nothing more.
			again := e.run(e.collector(tc.pol, tc.skew), false)
			if again.Manifests+again.Links+again.Blobs+again.OrphanFiles != 0 {
				t.Errorf("second run deleted more: %+v", again)
			}
		})
	}
}

func pulls(t *testing.T, e *env, repo, ref string, m manifest) {
	t.Helper()
	if err := e.pull(repo, ref, m); err != nil {
		t.Error(err)
	}
}

func gone(t *testing.T, e *env, repo, ref string) {
	t.Helper()
	if code, _, _ := e.do("GET", "/v2/"+repo+"/manifests/"+ref, nil, ""); code != 404 {
		t.Errorf("%s:%s answers %d, want 404", repo, ref, code)
	}
}

// commitOnly commits data into the blob store without linking it, as a
// push that crashed before its link would.
func commitOnly(t *testing.T, e *env, id string, data []byte) digest.Digest {
	t.Helper()
	w, err := e.blobs.Upload(t.Context(), id, blob.UploadState{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(data)
	if _, err := w.Commit(t.Context(), d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	return d
}

func age(t *testing.T, e *env, d digest.Digest, by time.Duration) {
	t.Helper()
	hex := d.Encoded()
	p := filepath.Join(e.blobs.Root(), "blobs", string(d.Algorithm()), hex[:2], hex)
	old := time.Now().Add(-by)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
}

func TestOrphanFiles(t *testing.T) {
	e := newEnv(t)
	old := commitOnly(t, e, "00000000000000000000000000000001", []byte("old orphan"))
	age(t, e, old, 2*time.Hour)
	commitOnly(t, e, "00000000000000000000000000000002", []byte("young orphan"))

	r := e.run(e.collector(Policy{Grace: time.Hour}, 0), false)
	if r.OrphanFiles != 1 || r.BytesFreed != int64(len("old orphan")) {
		t.Errorf("report = %+v, want one orphan file", r)
	}
	if e.hasFile([]byte("old orphan")) || !e.hasFile([]byte("young orphan")) {
		t.Error("wrong orphan deleted")
	}
	if _, err := e.meta.BlobRecord(t.Context(), old); !errors.Is(err, meta.ErrBlobNotFound) {
		t.Errorf("tombstone of the orphan left: %v", err)
	}
}

// TestDedupOfOrphan is the dedup race: bytes that exist only as an old
// orphan file are uploaded again. The commit finds them and refreshes their
// time, so a gc running between the commit and the link (simulated by
// not linking) leaves them; the push then links and pulls.
func TestDedupOfOrphan(t *testing.T) {
	e := newEnv(t)
	data := []byte("orphan reused")
	d := commitOnly(t, e, "00000000000000000000000000000001", data)
	age(t, e, d, 48*time.Hour)
	commitOnly(t, e, "00000000000000000000000000000002", data) // the second push's commit
	r := e.run(e.collector(Policy{Grace: time.Hour}, 0), false)
	if r.OrphanFiles != 0 || !e.hasFile(data) {
		t.Fatalf("gc deleted an orphan that a push had just committed again: %+v", r)
	}
	img := newImage("dedup", nil, data)
	e.push("app", "v1", img)
	pulls(t, e, "app", "v1", img)
}

// TestInterruptedDeletion finishes a deletion a crash left half done: the
// tombstone is in place, its claim's lease has ended, and the bytes may or
// may not be gone.
func TestInterruptedDeletion(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	a := commitOnly(t, e, "00000000000000000000000000000001", []byte("bytes still there"))
	b := commitOnly(t, e, "00000000000000000000000000000002", []byte("bytes already gone"))
	crashed := meta.Claim{Token: "crashed", At: time.Now().Add(-time.Hour), Lease: meta.DefaultClaimLease}
	for _, d := range []digest.Digest{a, b} {
		if got, err := e.meta.ClaimBlobs(ctx, []meta.BlobRecord{{Digest: d, Size: 1}}, time.Now(), crashed); len(got) != 1 || err != nil {
			t.Fatalf("ClaimBlob: %v %v", got, err)
		}
	}
	if err := e.blobs.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	// Nothing may link a tombstone meanwhile.
	code, _, _ := e.do("POST", "/v2/app/blobs/uploads/?digest="+a.String(), []byte("bytes still there"), "")
	if code != 503 {
		t.Errorf("push of a blob being deleted = %d, want 503", code)
	}
	r := e.run(e.collector(Policy{Grace: time.Hour}, 0), false)
	if r.Blobs != 2 {
		t.Errorf("report = %+v, want both tombstones finished", r)
	}
	if files, _ := e.files(); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
	e.pushBlob("app", []byte("bytes still there"))
}

func TestUploadExpiry(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	old := time.Now().Add(-48 * time.Hour)
	ids := []string{"0000000000000000000000000000000a", "0000000000000000000000000000000b", "0000000000000000000000000000000c"}
	for i, id := range ids {
		w, err := e.blobs.Upload(ctx, id, blob.UploadState{})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("partial"))
		w.Close()
		switch i {
		case 0: // an old session
			if err := e.meta.CreateUpload(ctx, meta.Upload{ID: id, Repo: "app", Created: old, Updated: old}); err != nil {
				t.Fatal(err)
			}
		case 1: // a live session whose data is old
			if err := e.meta.CreateUpload(ctx, meta.Upload{ID: id, Repo: "app"}); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(e.blobs.Root(), "uploads", id)
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	r := e.run(e.collector(Policy{Grace: time.Hour, UploadExpireAfter: day}, 0), false)
	if r.Uploads != 1 || r.UploadData != 1 {
		t.Errorf("report = %+v, want one session and one orphan upload expired", r)
	}
	var left []string
	e.blobs.WalkUploads(ctx, func(id string, _ time.Time) error { left = append(left, id); return nil })
	if len(left) != 1 || left[0] != ids[1] {
		t.Errorf("upload data left = %v, want only the live session's", left)
	}
}
