package gc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/meta"
)

// The dry run says what the run would do, cascades included: a chain of
// 1,001 manifests where deleting each untagged index frees the next (a
// real run needs 1,001 passes; the dry run used to stop after one and
// report 1 manifest), the links and blobs those manifests free, a
// referrer orphaned by its deleted subject, an orphan file and an expired
// upload. It deletes nothing.
func TestDryRunReportsWhatTheRunDoes(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes 1,001 manifests")
	}
	e := newEnv(t)
	ctx := t.Context()
	const chain = 1_001
	base := newImage("base", nil, []byte("layer of the chain"))
	e.push("app", "", base)
	top := base
	for range chain - 1 {
		top = newIndex(top)
		e.push("app", "", top)
	}
	// A tagged image and its signature stay; an untagged image with a
	// signature goes, the signature after it (its grace has passed).
	kept := newImage("kept", nil, []byte("kept layer"))
	e.push("app", "v1", kept)
	e.push("app", "", newImage("sig of kept", &kept))
	gone := newImage("gone", nil, []byte("gone layer"))
	e.push("app", "", gone)
	e.push("app", "", newImage("sig of gone", &gone))
	// An orphan file and an expired upload with its data.
	orphan := commitOnly(t, e, "00000000000000000000000000000009", []byte("orphan bytes"))
	age(t, e, orphan, 3*time.Hour)
	old := time.Now().Add(-3 * time.Hour)
	const upload = "0000000000000000000000000000000a"
	if err := e.meta.CreateUpload(ctx, meta.Upload{ID: upload, Repo: "app", Created: old, Updated: old}); err != nil {
		t.Fatal(err)
	}
	w, err := e.blobs.Upload(ctx, upload, blob.UploadState{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	w.Close()
	os.Chtimes(filepath.Join(e.blobs.Root(), "uploads", upload), old, old)

	pol := Policy{Grace: time.Hour, UntaggedAfter: time.Hour, UploadExpireAfter: time.Hour}
	c := e.collector(pol, 2*time.Hour)
	filesBefore, bytesBefore := e.files()

	dry := e.run(c, true)
	if !dry.DryRun {
		t.Errorf("dry run report says DryRun false")
	}
	// Nothing was deleted.
	if files, total := e.files(); len(files) != len(filesBefore) || total != bytesBefore {
		t.Fatalf("the dry run deleted files: %d (%d bytes) left of %d (%d)", len(files), total, len(filesBefore), bytesBefore)
	}
	if err := e.pull("app", top.digest.String(), top); err != nil {
		t.Fatalf("the dry run deleted the top of the chain: %v", err)
	}
	if err := e.pull("app", base.digest.String(), base); err != nil {
		t.Fatalf("the dry run deleted the chain's image: %v", err)
	}
	if _, err := e.meta.GetUpload(ctx, "app", upload); err != nil {
		t.Fatalf("the dry run expired the upload: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.blobs.Root(), "uploads", upload)); err != nil {
		t.Fatalf("the dry run removed upload data: %v", err)
	}
	if n, err := os.ReadDir(e.dir); err == nil {
		for _, f := range n {
			if strings.HasPrefix(f.Name(), ".gc-dry-run-") {
				t.Errorf("snapshot left behind: %s", f.Name())
			}
		}
	}

	real := e.run(c, false)
	if real.Manifests != chain+2 {
		t.Errorf("the run deleted %d manifests, want %d (the chain, an image and its signature)", real.Manifests, chain+2)
	}
	if real.Passes < chain {
		t.Errorf("the run took %d passes, want at least %d", real.Passes, chain)
	}
	dry.DryRun, dry.Duration, real.Duration = false, 0, 0
	if dry != real {
		t.Errorf("dry run = %+v\nrun     = %+v\nwant the same", dry, real)
	}
	if err := e.pull("app", "v1", kept); err != nil {
		t.Errorf("the tagged image went: %v", err)
	}
}

// Without a way to copy the metadata store, a dry run refuses rather than
// report less than a run would do.
func TestDryRunNeedsASnapshot(t *testing.T) {
	e := newEnv(t)
	c := New(e.meta, e.blobs, Policy{}, nil)
	if _, err := c.Run(context.Background(), true); err == nil {
		t.Fatal("a dry run without a snapshot succeeded")
	}
}
