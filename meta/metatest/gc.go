package metatest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// GCStore is the part of a backend that garbage collection (package gc) and
// fsck (package fsck) use, on top of meta.Store. Those packages declare
// the narrow slices they consume; this is their union, and the contract
// every backend must pass (the GC subtests fail on a backend without it).
//
// Listings are keyset-paged: strictly after the cursor, at most n rows
// (n < 0: no limit), in the documented order. Sweep and claim methods
// re-check their condition in the same transaction that deletes, so that a
// concurrent LinkBlob or PutManifest is ordered entirely before (and the
// condition fails) or entirely after (and it sees the deletion).
type GCStore interface {
	meta.Store
	UntaggedManifests(ctx context.Context, after meta.ManifestKey, n int) ([]meta.UntaggedManifest, error)
	// SweepManifests deletes, in one transaction and in the order given,
	// each manifest its rule (meta.ManifestSweep) still holds for; it
	// returns the keys deleted.
	SweepManifests(ctx context.Context, keys []meta.ManifestKey, rule meta.ManifestSweep) ([]meta.ManifestKey, error)
	UnreferencedLinks(ctx context.Context, before time.Time, after meta.LinkKey, n int) ([]meta.LinkKey, error)
	// SweepLinks removes, in one transaction, each link made before before
	// whose blob no manifest of its repository references; it returns how
	// many links went.
	SweepLinks(ctx context.Context, keys []meta.LinkKey, before time.Time) (int, error)
	// UnlinkedBlobs lists tombstones, whoever holds them, and old rows
	// with no link and no reference; with a zero before, only tombstones.
	UnlinkedBlobs(ctx context.Context, before time.Time, after digest.Digest, n int) ([]meta.BlobRecord, error)
	// ClaimBlobs makes, in one transaction, each candidate a tombstone
	// held by claim unless it is linked, referenced, recorded at or after
	// before, or held by another run whose lease has not ended; it returns
	// the blobs claim holds (sizes from their rows) ordered by digest.
	ClaimBlobs(ctx context.Context, cands []meta.BlobRecord, before time.Time, claim meta.Claim) ([]meta.BlobRecord, error)
	// DropBlobs removes, in one transaction, the tombstones the run with
	// token holds.
	DropBlobs(ctx context.Context, token string, ds []digest.Digest) error
	BlobRecord(ctx context.Context, d digest.Digest) (meta.BlobRecord, error)
	BlobRecords(ctx context.Context, after digest.Digest, n int) ([]meta.BlobRecord, error)
	Links(ctx context.Context, after meta.LinkKey, n int) ([]meta.LinkKey, error)
	BlobRefs(ctx context.Context, after meta.BlobRef, n int) ([]meta.BlobRef, error)
	ExpiredUploads(ctx context.Context, before time.Time, after string, n int) ([]string, error)
	ExpireUpload(ctx context.Context, id string, before time.Time) (bool, error)
	UploadKnown(ctx context.Context, id string) (bool, error)
}

// The one-row forms the tests use, over the batch methods (the contract
// has no separate single-row methods).
func sweepManifest(ctx context.Context, s GCStore, key meta.ManifestKey, rule meta.ManifestSweep) (bool, error) {
	swept, err := s.SweepManifests(ctx, []meta.ManifestKey{key}, rule)
	return len(swept) == 1, err
}

func sweepLink(ctx context.Context, s GCStore, key meta.LinkKey, before time.Time) (bool, error) {
	n, err := s.SweepLinks(ctx, []meta.LinkKey{key}, before)
	return n == 1, err
}

func claimBlob(ctx context.Context, s GCStore, d digest.Digest, size int64, before time.Time, claim meta.Claim) (bool, error) {
	claimed, err := s.ClaimBlobs(ctx, []meta.BlobRecord{{Digest: d, Size: size}}, before, claim)
	return len(claimed) == 1, err
}

func dropBlob(ctx context.Context, s GCStore, token string, d digest.Digest) error {
	return s.DropBlobs(ctx, token, []digest.Digest{d})
}

func gcStore(t *testing.T, s meta.Store) GCStore {
	t.Helper()
	gs, ok := s.(GCStore)
	if !ok {
		t.Fatalf("%T does not implement metatest.GCStore (the gc and fsck contract)", s)
	}
	return gs
}

var (
	future = func() time.Time { return time.Now().Add(time.Hour) }
	past   = func() time.Time { return time.Now().Add(-time.Hour) }
)

// claimOf is a claim for a run named token, taken now with the default
// lease.
func claimOf(token string) meta.Claim {
	return meta.Claim{Token: token, At: time.Now(), Lease: meta.DefaultClaimLease}
}

// gcRun is the token the single-collector tests claim with.
const gcRun = "run"

func testGCSweepManifest(t *testing.T, ms meta.Store) {
	s := gcStore(t, ms)
	ctx := t.Context()
	ds := link(t, s, "app", "config", "layer")
	tagged := image("app", "tagged", ds[0], ds[1])
	untagged := image("app", "untagged", ds[0])
	child := image("app", "child", ds[0])
	put(t, s, tagged, "v1")
	put(t, s, untagged)
	put(t, s, child)
	idx := image("app", "index", "")
	idx.MediaType = "application/vnd.oci.image.index.v1+json"
	idx.Refs = []meta.Ref{{Digest: child.Digest, Kind: meta.RefManifest, MediaType: child.MediaType, Size: 1}}
	put(t, s, idx)
	sig := image("app", "sig", ds[1])
	sig.Subject = tagged.Digest
	put(t, s, sig)

	key := func(m *meta.Manifest) meta.ManifestKey { return meta.ManifestKey{Repo: m.Repo, Digest: m.Digest} }
	listed := func() []digest.Digest {
		t.Helper()
		var out []digest.Digest
		var after meta.ManifestKey
		for {
			page, err := s.UntaggedManifests(ctx, after, 2)
			noErr(t, err, "UntaggedManifests")
			for _, m := range page {
				out = append(out, m.Digest)
				if m.Digest == sig.Digest && (!m.SubjectExists || m.Subject != tagged.Digest) {
					t.Errorf("UntaggedManifests: sig subject = %s exists=%v", m.Subject, m.SubjectExists)
				}
			}
			if len(page) < 2 {
				return out
			}
			after = page[len(page)-1].ManifestKey
		}
	}
	sorted := func(ds ...digest.Digest) []digest.Digest { slices.Sort(ds); return ds }
	if got, want := listed(), sorted(untagged.Digest, idx.Digest, sig.Digest); !slices.Equal(got, want) {
		t.Errorf("UntaggedManifests = %v, want %v (not the tagged one, not the index child)", got, want)
	}

	sweep := func(m *meta.Manifest, rule meta.ManifestSweep) bool {
		t.Helper()
		ok, err := sweepManifest(ctx, s, key(m), rule)
		noErr(t, err, "SweepManifest")
		return ok
	}
	old := meta.ManifestSweep{UntaggedBefore: future()}
	if sweep(untagged, meta.ManifestSweep{UntaggedBefore: past()}) {
		t.Error("swept an untagged manifest younger than the rule")
	}
	if sweep(untagged, meta.ManifestSweep{}) {
		t.Error("swept with no rule")
	}
	if sweep(tagged, old) || sweep(child, old) || sweep(sig, old) {
		t.Error("swept a tagged manifest, an index child or a referrer whose subject exists")
	}
	if !sweep(untagged, old) {
		t.Error("old untagged manifest not swept")
	}
	if sweep(untagged, old) {
		t.Error("swept twice")
	}
	if !sweep(idx, old) || !sweep(child, old) {
		t.Error("index, then its child, not swept")
	}
	_, err := s.GetManifest(ctx, "app", child.Digest)
	wantErr(t, err, meta.ErrManifestNotFound, "GetManifest of swept child")

	// The subject goes (delete by digest); its referrer is an orphan now,
	// swept by the orphan rule even when untagged manifests are kept.
	noErr(t, s.DeleteManifest(ctx, "app", tagged.Digest), "DeleteManifest")
	if sweep(sig, meta.ManifestSweep{OrphanBefore: past()}) {
		t.Error("swept a young orphan referrer")
	}
	if !sweep(sig, meta.ManifestSweep{OrphanBefore: future()}) {
		t.Error("orphan referrer not swept")
	}
	if got := listed(); len(got) != 0 {
		t.Errorf("UntaggedManifests after sweeping = %v", got)
	}
	if ok, err := sweepManifest(ctx, s, meta.ManifestKey{Repo: "nope", Digest: tagged.Digest}, old); ok || err != nil {
		t.Errorf("SweepManifest in unknown repo = %v, %v", ok, err)
	}
}

func testGCSweepLink(t *testing.T, ms meta.Store) {
	s := gcStore(t, ms)
	ctx := t.Context()
	ds := link(t, s, "app", "config", "loose")
	link(t, s, "other", "config")
	put(t, s, image("app", "img", ds[0]), "v1")

	var all []meta.LinkKey
	var after meta.LinkKey
	for {
		page, err := s.UnreferencedLinks(ctx, future(), after, 1)
		noErr(t, err, "UnreferencedLinks")
		all = append(all, page...)
		if len(page) < 1 {
			break
		}
		after = page[len(page)-1]
	}
	want := []meta.LinkKey{{Repo: "app", Digest: ds[1]}, {Repo: "other", Digest: ds[0]}}
	if !slices.Equal(all, want) {
		t.Errorf("UnreferencedLinks = %v, want %v", all, want)
	}
	if page, err := s.UnreferencedLinks(ctx, past(), meta.LinkKey{}, -1); err != nil || len(page) != 0 {
		t.Errorf("UnreferencedLinks before the links were made = %v, %v", page, err)
	}
	sweep := func(k meta.LinkKey, before time.Time) bool {
		t.Helper()
		ok, err := sweepLink(ctx, s, k, before)
		noErr(t, err, "SweepLink")
		return ok
	}
	if sweep(meta.LinkKey{Repo: "app", Digest: ds[0]}, future()) {
		t.Error("swept a link a manifest references")
	}
	if sweep(want[1], past()) {
		t.Error("swept a link made after before")
	}
	if !sweep(want[1], future()) || !sweep(want[0], future()) {
		t.Error("unreferenced links not swept")
	}
	_, err := s.BlobLink(ctx, "other", ds[0])
	wantErr(t, err, meta.ErrBlobNotFound, "BlobLink after SweepLink")
	if _, err := s.BlobLink(ctx, "app", ds[0]); err != nil {
		t.Errorf("BlobLink of the referenced blob: %v", err)
	}
	// Linking again refreshes the link's time: a sweep by a time taken
	// between the first link and the second leaves it, a later one takes
	// it. Times come from the store's clock (PostgreSQL's, not this
	// process's).
	now := meta.ClockOf(s)
	again := meta.LinkKey{Repo: "other", Digest: ds[0]}
	link(t, s, "other", "config")
	time.Sleep(2 * time.Millisecond)
	cut := now()
	time.Sleep(2 * time.Millisecond)
	link(t, s, "other", "config")
	if sweep(again, cut) {
		t.Error("swept a link made again after the cut")
	}
	time.Sleep(2 * time.Millisecond)
	if !sweep(again, now()) {
		t.Error("a link made again was not swept by a later time")
	}
	if sweep(again, future()) {
		t.Error("swept a missing link")
	}
}

func testGCClaimBlob(t *testing.T, ms meta.Store) {
	s := gcStore(t, ms)
	ctx := t.Context()
	ds := link(t, s, "app", "linked", "loose")
	noErr(t, s.UnlinkBlob(ctx, "app", ds[1]), "UnlinkBlob")
	loose, looseSize := blob("loose")

	recs, err := s.UnlinkedBlobs(ctx, future(), "", -1)
	noErr(t, err, "UnlinkedBlobs")
	if len(recs) != 1 || recs[0].Digest != loose || recs[0].Size != looseSize || recs[0].Deleting {
		t.Errorf("UnlinkedBlobs = %+v, want only %s", recs, loose)
	}
	if recs, _ := s.UnlinkedBlobs(ctx, past(), "", -1); len(recs) != 0 {
		t.Errorf("UnlinkedBlobs before the rows were made = %+v", recs)
	}

	claim := func(d digest.Digest, before time.Time) bool {
		t.Helper()
		ok, err := claimBlob(ctx, s, d, 1, before, claimOf(gcRun))
		noErr(t, err, "ClaimBlob")
		return ok
	}
	if claim(ds[0], future()) {
		t.Error("claimed a linked blob")
	}
	if claim(loose, past()) {
		t.Error("claimed a blob recorded after before")
	}
	if _, linkedSize := blob("linked"); true {
		if rec, err := s.BlobRecord(ctx, ds[0]); err != nil || rec.Size != linkedSize || rec.Deleting {
			t.Errorf("BlobRecord = %+v, %v; want size %d, live", rec, err, linkedSize)
		}
	}
	if !claim(loose, future()) || !claim(loose, past()) {
		t.Error("unlinked blob not claimed, or its tombstone not claimed again")
	}
	rec, err := s.BlobRecord(ctx, loose)
	if err != nil || !rec.Deleting {
		t.Errorf("BlobRecord of a tombstone = %+v, %v", rec, err)
	}
	// While it is a tombstone nothing may link it, and a session that
	// committed it stays (nothing of FinishUpload happens).
	err = s.LinkBlob(ctx, "app", loose, looseSize)
	wantErr(t, err, meta.ErrBlobDeleting, "LinkBlob of a tombstone")
	noErr(t, s.CreateUpload(ctx, meta.Upload{ID: "tomb", Repo: "app"}), "CreateUpload")
	err = s.FinishUpload(ctx, "tomb", "app", loose, looseSize)
	wantErr(t, err, meta.ErrBlobDeleting, "FinishUpload of a tombstone")
	if _, err := s.GetUpload(ctx, "app", "tomb"); err != nil {
		t.Errorf("GetUpload after a refused FinishUpload: %v", err)
	}
	noErr(t, s.DeleteUpload(ctx, "tomb"), "DeleteUpload")
	if _, err := s.BlobLink(ctx, "app", loose); !errors.Is(err, meta.ErrBlobNotFound) {
		t.Errorf("BlobLink after a refused LinkBlob: %v", err)
	}
	recs, _ = s.UnlinkedBlobs(ctx, past(), "", -1)
	if len(recs) != 1 || !recs[0].Deleting {
		t.Errorf("UnlinkedBlobs lists tombstones whatever their age: %+v", recs)
	}
	noErr(t, dropBlob(ctx, s, gcRun, loose), "DropBlob")
	_, err = s.BlobRecord(ctx, loose)
	wantErr(t, err, meta.ErrBlobNotFound, "BlobRecord after DropBlob")
	noErr(t, s.LinkBlob(ctx, "app", loose, looseSize), "LinkBlob after DropBlob")

	// DropBlob leaves a live row alone.
	noErr(t, dropBlob(ctx, s, gcRun, ds[0]), "DropBlob of a live row")
	if _, err := s.BlobRecord(ctx, ds[0]); err != nil {
		t.Errorf("live row dropped: %v", err)
	}

	// A blob with no row (an orphan file) gets a tombstone.
	orphan := digest.FromString("orphan")
	if !claim(orphan, past()) {
		t.Error("orphan not claimed")
	}
	if rec, err := s.BlobRecord(ctx, orphan); err != nil || !rec.Deleting {
		t.Errorf("orphan's tombstone = %+v, %v", rec, err)
	}
	// A blob referenced by a manifest is never claimed, even unlinked (a
	// sparse manifest's external layer).
	m := image("app", "ext", ds[0])
	ext := digest.FromString("ext")
	m.Refs = append(m.Refs, meta.Ref{Digest: ext, Kind: meta.RefExternal, MediaType: "x", Size: 1})
	put(t, s, m)
	noErr(t, s.LinkBlob(ctx, "tmp", ext, 3), "LinkBlob ext")
	noErr(t, s.UnlinkBlob(ctx, "tmp", ext), "UnlinkBlob ext")
	if claim(ext, future()) {
		t.Error("claimed a referenced blob")
	}
}

func testGCUploads(t *testing.T, ms meta.Store) {
	s := gcStore(t, ms)
	ctx := t.Context()
	old := time.Now().Add(-48 * time.Hour)
	for i := range 3 {
		noErr(t, s.CreateUpload(ctx, meta.Upload{ID: fmt.Sprintf("old%d", i), Repo: "app", Created: old, Updated: old}), "CreateUpload")
	}
	noErr(t, s.CreateUpload(ctx, meta.Upload{ID: "new", Repo: "app"}), "CreateUpload")
	cut := time.Now().Add(-24 * time.Hour)
	var ids []string
	after := ""
	for {
		page, err := s.ExpiredUploads(ctx, cut, after, 2)
		noErr(t, err, "ExpiredUploads")
		ids = append(ids, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1]
	}
	checkStrings(t, "ExpiredUploads", ids, []string{"old0", "old1", "old2"})
	if ok, err := s.ExpireUpload(ctx, "new", cut); ok || err != nil {
		t.Errorf("ExpireUpload of a fresh session = %v, %v", ok, err)
	}
	// A session updated since it was listed is not expired.
	noErr(t, s.UpdateUpload(ctx, "old1", 0, 0, nil), "UpdateUpload")
	for _, id := range ids {
		ok, err := s.ExpireUpload(ctx, id, cut)
		noErr(t, err, "ExpireUpload")
		if ok != (id != "old1") {
			t.Errorf("ExpireUpload(%s) = %v", id, ok)
		}
	}
	for id, want := range map[string]bool{"old0": false, "old1": true, "new": true, "none": false} {
		if got, err := s.UploadKnown(ctx, id); got != want || err != nil {
			t.Errorf("UploadKnown(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
}

func testGCListings(t *testing.T, ms meta.Store) {
	s := gcStore(t, ms)
	ctx := t.Context()
	ds := link(t, s, "a", "x", "y")
	link(t, s, "b", "x")
	put(t, s, image("a", "m1", ds[0], ds[1]))
	put(t, s, image("b", "m2", ds[0]))

	var recs []digest.Digest
	for after := digest.Digest(""); ; {
		page, err := s.BlobRecords(ctx, after, 1)
		noErr(t, err, "BlobRecords")
		if len(page) == 0 {
			break
		}
		recs = append(recs, page[0].Digest)
		after = page[0].Digest
	}
	if want := slices.Sorted(slices.Values(ds)); !slices.Equal(recs, want) {
		t.Errorf("BlobRecords = %v, want %v", recs, want)
	}
	links, err := s.Links(ctx, meta.LinkKey{}, -1)
	noErr(t, err, "Links")
	if len(links) != 3 || links[0].Repo != "a" || links[2] != (meta.LinkKey{Repo: "b", Digest: ds[0]}) {
		t.Errorf("Links = %v", links)
	}
	var refs []meta.BlobRef
	for after := (meta.BlobRef{}); ; {
		page, err := s.BlobRefs(ctx, after, 2)
		noErr(t, err, "BlobRefs")
		refs = append(refs, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1]
	}
	if len(refs) != 3 {
		t.Fatalf("BlobRefs = %+v, want 3", refs)
	}
	for i := 1; i < len(refs); i++ {
		if refs[i].Digest < refs[i-1].Digest {
			t.Errorf("BlobRefs not in digest order: %+v", refs)
		}
	}
}

// testGCConcurrentSweep runs link sweeps and blob claims against pushes of
// manifests that need those links. Whatever the interleaving, every stored
// manifest's blobs stay linked and none is a tombstone.
func testGCConcurrentSweep(t *testing.T, ms meta.Store) {
	s := gcStore(t, ms)
	gcRace(t, s, s)
}

// gcRace pushes (links, then manifests referencing them) through s while
// gc sweeps and claims through collector, with no grace; then every
// manifest stored must have its blobs linked and alive. With two handles
// on one database (RunTwoHandles) the two sides run on different
// connections, as two replicas or berth gc beside berth serve do.
func gcRace(t *testing.T, s, collector GCStore) {
	ctx := t.Context()
	const repo = "race"
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		untilClosed(stop, func() bool {
			links, err := collector.UnreferencedLinks(ctx, future(), meta.LinkKey{}, -1)
			if err != nil {
				t.Error(err)
				return false
			}
			for _, l := range links {
				if _, err := sweepLink(ctx, collector, l, future()); err != nil {
					t.Error(err)
					return false
				}
			}
			recs, err := collector.UnlinkedBlobs(ctx, future(), "", -1)
			if err != nil {
				t.Error(err)
				return false
			}
			for _, r := range recs {
				if ok, err := claimBlob(ctx, collector, r.Digest, r.Size, future(), claimOf(gcRun)); err != nil {
					t.Error(err)
					return false
				} else if ok {
					if err := dropBlob(ctx, collector, gcRun, r.Digest); err != nil {
						t.Error(err)
						return false
					}
				}
			}
			return true
		})
	})
	var stored []*meta.Manifest
	for i := range 60 {
		d, size := blob(fmt.Sprintf("layer %d", i%7))
		err := s.LinkBlob(ctx, repo, d, size)
		if err != nil && !errors.Is(err, meta.ErrBlobDeleting) {
			t.Fatalf("LinkBlob: %v", err)
		}
		m := image(repo, fmt.Sprintf("m%d", i), "", d)
		err = s.PutManifest(ctx, m, fmt.Sprintf("t%d", i))
		switch {
		case errors.Is(err, meta.ErrBlobNotFound):
		case err != nil:
			t.Fatalf("PutManifest: %v", err)
		default:
			stored = append(stored, m)
		}
	}
	close(stop)
	wg.Wait()
	if len(stored) == 0 {
		t.Log("no manifest won the race against the sweeper")
	}
	for _, m := range stored {
		for _, r := range m.Refs {
			if _, err := s.BlobLink(ctx, repo, r.Digest); err != nil {
				t.Errorf("manifest %s stored but its blob %s: %v", m.Digest, r.Digest, err)
			}
			if rec, err := s.BlobRecord(ctx, r.Digest); err != nil || rec.Deleting {
				t.Errorf("blob %s of a stored manifest: %+v, %v", r.Digest, rec, err)
			}
		}
	}
}

// testGCBatches checks that the batch methods apply, row by row, the same
// conditions as the single ones, in one call.
func testGCBatches(t *testing.T, ms meta.Store) {
	s := gcStore(t, ms)
	ctx := t.Context()

	// Blobs: a linked one, a referenced but unlinked one, an unlinked one,
	// a tombstone, a young one (claimed with a cut taken before its row),
	// and one with no row.
	ds := link(t, s, "app", "linked", "ext", "loose", "dead")
	m := image("app", "m", ds[0])
	m.Refs = append(m.Refs, meta.Ref{Digest: ds[1], Kind: meta.RefExternal, MediaType: "x", Size: 3})
	put(t, s, m, "v1")
	for _, d := range ds[1:] {
		noErr(t, s.UnlinkBlob(ctx, "app", d), "UnlinkBlob")
	}
	if ok, err := claimBlob(ctx, s, ds[3], 4, future(), claimOf(gcRun)); !ok || err != nil {
		t.Fatalf("ClaimBlob(dead) = %v, %v", ok, err)
	}
	now := meta.ClockOf(s) // the store's clock: its rows' times come from it
	cut := now()
	time.Sleep(2 * time.Millisecond)
	young := link(t, s, "app", "young")[0]
	noErr(t, s.UnlinkBlob(ctx, "app", young), "UnlinkBlob")
	orphan := digest.FromString("orphan file")

	var cands []meta.BlobRecord
	for _, d := range append(ds, young, orphan, ds[2]) { // ds[2] twice
		cands = append(cands, meta.BlobRecord{Digest: d, Size: 11})
	}
	if got, err := s.ClaimBlobs(ctx, nil, cut, claimOf(gcRun)); got != nil || err != nil {
		t.Errorf("ClaimBlobs(nil) = %v, %v", got, err)
	}
	claimed, err := s.ClaimBlobs(ctx, cands, cut, claimOf(gcRun))
	noErr(t, err, "ClaimBlobs")
	want := map[digest.Digest]int64{ds[2]: int64(len("loose")), ds[3]: int64(len("dead")), orphan: 11}
	var got []digest.Digest
	for _, b := range claimed {
		got = append(got, b.Digest)
		if size, ok := want[b.Digest]; !ok || b.Size != size || !b.Deleting {
			t.Errorf("ClaimBlobs claimed %+v", b)
		}
	}
	if !slices.IsSorted(got) || len(got) != len(want) {
		t.Errorf("ClaimBlobs = %v, want %d blobs in digest order", got, len(want))
	}
	for _, d := range []digest.Digest{ds[0], ds[1], young} {
		if rec, err := s.BlobRecord(ctx, d); err != nil || rec.Deleting {
			t.Errorf("blob %s not to be claimed: %+v, %v", d, rec, err)
		}
	}
	err = s.LinkBlob(ctx, "app", ds[2], 5)
	wantErr(t, err, meta.ErrBlobDeleting, "LinkBlob of a batch-claimed blob")
	noErr(t, s.DropBlobs(ctx, gcRun, nil), "DropBlobs(nil)")
	noErr(t, s.DropBlobs(ctx, gcRun, []digest.Digest{ds[0], ds[2], ds[3], orphan, digest.FromString("none")}), "DropBlobs")
	for _, d := range []digest.Digest{ds[2], ds[3], orphan} {
		_, err := s.BlobRecord(ctx, d)
		wantErr(t, err, meta.ErrBlobNotFound, "BlobRecord after DropBlobs")
	}
	if _, err := s.BlobRecord(ctx, ds[0]); err != nil {
		t.Errorf("DropBlobs dropped a live row: %v", err)
	}
	noErr(t, s.LinkBlob(ctx, "app", ds[2], 5), "LinkBlob after DropBlobs")

	// Links: referenced, unreferenced, young, in another repository, and a
	// repository that does not exist.
	link(t, s, "other", "linked", "loose")
	cut = now()
	time.Sleep(2 * time.Millisecond)
	link(t, s, "other", "young")
	keys := []meta.LinkKey{
		{Repo: "app", Digest: ds[0]},   // referenced by m
		{Repo: "app", Digest: ds[2]},   // unreferenced
		{Repo: "other", Digest: ds[0]}, // unreferenced in other
		{Repo: "other", Digest: young}, // linked after the cut
		{Repo: "nope", Digest: ds[2]},  // no such repository
		{Repo: "other", Digest: ds[2]}, // unreferenced in other
		{Repo: "app", Digest: ds[2]},   // twice
	}
	if n, err := s.SweepLinks(ctx, nil, cut); n != 0 || err != nil {
		t.Errorf("SweepLinks(nil) = %d, %v", n, err)
	}
	n, err := s.SweepLinks(ctx, keys, cut)
	noErr(t, err, "SweepLinks")
	if n != 3 {
		t.Errorf("SweepLinks = %d, want 3", n)
	}
	for _, k := range keys {
		_, err := s.BlobLink(ctx, k.Repo, k.Digest)
		kept := k == keys[0] || k == keys[3]
		if kept != (err == nil) {
			t.Errorf("after SweepLinks, link %v: %v (want kept=%v)", k, err, kept)
		}
	}

	// Manifests: an index and its child in one batch (the child after the
	// index goes with it), a tagged one, an unknown repository, and one
	// listed twice.
	c1, c2 := link(t, s, "app", "c1")[0], link(t, s, "app", "c2")[0]
	child := image("app", "child", c1)
	loose := image("app", "loose", c2)
	put(t, s, child)
	put(t, s, loose)
	idx := image("app", "index", "")
	idx.MediaType = "application/vnd.oci.image.index.v1+json"
	idx.Refs = []meta.Ref{{Digest: child.Digest, Kind: meta.RefManifest, MediaType: child.MediaType, Size: 1}}
	put(t, s, idx)
	key := func(m *meta.Manifest) meta.ManifestKey { return meta.ManifestKey{Repo: m.Repo, Digest: m.Digest} }
	rule := meta.ManifestSweep{UntaggedBefore: future()}
	if got, err := s.SweepManifests(ctx, nil, rule); got != nil || err != nil {
		t.Errorf("SweepManifests(nil) = %v, %v", got, err)
	}
	batch := []meta.ManifestKey{key(child), key(idx), key(m), {Repo: "nope", Digest: m.Digest}, key(loose), key(loose)}
	swept, err := s.SweepManifests(ctx, batch, meta.ManifestSweep{UntaggedBefore: past()})
	if err != nil || len(swept) != 0 {
		t.Errorf("SweepManifests with a rule nothing meets = %v, %v", swept, err)
	}
	swept, err = s.SweepManifests(ctx, batch, rule)
	noErr(t, err, "SweepManifests")
	if want := []meta.ManifestKey{key(idx), key(loose)}; !slices.Equal(swept, want) {
		t.Errorf("SweepManifests = %v, want %v (the child was listed before its index)", swept, want)
	}
	swept, err = s.SweepManifests(ctx, batch, rule)
	noErr(t, err, "SweepManifests")
	if want := []meta.ManifestKey{key(child)}; !slices.Equal(swept, want) {
		t.Errorf("SweepManifests again = %v, want %v", swept, want)
	}
	get(t, s, "app", m.Digest)
}

// testGCConcurrentBatches runs gc's batch sweep (links, then claims, then
// drops, a page at a time) in a loop against several goroutines that link
// shared blobs and push manifests needing them, as concurrent pushes do.
// Whatever the interleaving, every stored manifest's blobs stay linked and
// live, and a refused link is always meta.ErrBlobDeleting.
func testGCConcurrentBatches(t *testing.T, ms meta.Store) {
	s := gcStore(t, ms)
	ctx := t.Context()
	const pushers, rounds, page = 4, 30, 3
	stop := make(chan struct{})
	var (
		sweeps, claims int
		sweeper        sync.WaitGroup
	)
	sweeper.Go(func() {
		untilClosed(stop, func() bool {
			links, err := s.UnreferencedLinks(ctx, future(), meta.LinkKey{}, -1)
			if err != nil {
				t.Error(err)
				return false
			}
			for len(links) > 0 {
				n := min(page, len(links))
				k, err := s.SweepLinks(ctx, links[:n], future())
				if err != nil {
					t.Error(err)
					return false
				}
				sweeps += k
				links = links[n:]
			}
			recs, err := s.UnlinkedBlobs(ctx, future(), "", -1)
			if err != nil {
				t.Error(err)
				return false
			}
			for len(recs) > 0 {
				n := min(page, len(recs))
				claimed, err := s.ClaimBlobs(ctx, recs[:n], future(), claimOf(gcRun))
				if err != nil {
					t.Error(err)
					return false
				}
				recs = recs[n:]
				ds := make([]digest.Digest, len(claimed))
				for i, b := range claimed {
					ds[i] = b.Digest
				}
				claims += len(ds)
				if err := s.DropBlobs(ctx, gcRun, ds); err != nil {
					t.Error(err)
					return false
				}
			}
			return true
		})
	})

	var (
		mu     sync.Mutex
		stored []*meta.Manifest
		wg     sync.WaitGroup
	)
	for p := range pushers {
		wg.Go(func() {
			repo := fmt.Sprintf("race%d", p%2)
			for i := range rounds {
				var layers []digest.Digest
				for _, name := range []string{fmt.Sprintf("shared %d", i%5), fmt.Sprintf("own %d %d", p, i%4)} {
					d, size := blob(name)
					if err := s.LinkBlob(ctx, repo, d, size); err != nil && !errors.Is(err, meta.ErrBlobDeleting) {
						t.Errorf("LinkBlob: %v", err)
						return
					}
					layers = append(layers, d)
				}
				m := image(repo, fmt.Sprintf("p%d-%d", p, i), "", layers...)
				err := s.PutManifest(ctx, m, fmt.Sprintf("p%d", p))
				switch {
				case errors.Is(err, meta.ErrBlobNotFound):
				case err != nil:
					t.Errorf("PutManifest: %v", err)
					return
				default:
					mu.Lock()
					stored = append(stored, m)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	sweeper.Wait()
	t.Logf("%d manifests stored; the sweeper removed %d links and %d blobs", len(stored), sweeps, claims)
	for _, m := range stored {
		for _, r := range m.Refs {
			if _, err := s.BlobLink(ctx, m.Repo, r.Digest); err != nil {
				t.Errorf("manifest %s stored but its blob %s: %v", m.Digest, r.Digest, err)
			}
			if rec, err := s.BlobRecord(ctx, r.Digest); err != nil || rec.Deleting {
				t.Errorf("blob %s of a stored manifest: %+v, %v", r.Digest, rec, err)
			}
		}
	}
}

// testGCClaimExclusive is two collectors at once: B claims a blob and
// stalls before deleting its bytes; A, running meanwhile, must neither get
// the blob from ClaimBlobs (it would delete the bytes and drop the row, a
// client could push the blob again, and B would then delete the fresh
// bytes) nor drop B's tombstone. A push of the blob is refused until B has
// dropped the tombstone. Once a holder's lease has ended another run takes
// its tombstones over, and the old holder can drop nothing.
func testGCClaimExclusive(t *testing.T, ms meta.Store) {
	s := gcStore(t, ms)
	ctx := t.Context()
	ds := link(t, s, "app", "x", "y")
	for _, d := range ds {
		noErr(t, s.UnlinkBlob(ctx, "app", d), "UnlinkBlob")
	}
	x, xSize := blob("x")
	y := ds[1]
	b, a := claimOf("B"), claimOf("A")

	if ok, err := claimBlob(ctx, s, x, xSize, future(), b); !ok || err != nil {
		t.Fatalf("B: ClaimBlob(x) = %v, %v", ok, err)
	}
	// Only tombstones are listed with a zero before.
	recs, err := s.UnlinkedBlobs(ctx, time.Time{}, "", -1)
	noErr(t, err, "UnlinkedBlobs(zero)")
	if len(recs) != 1 || recs[0].Digest != x || !recs[0].Deleting {
		t.Errorf("UnlinkedBlobs(zero) = %+v, want only x's tombstone", recs)
	} else if exp := recs[0].ClaimExpires; exp.Before(b.At.Add(b.Lease-time.Second)) || exp.After(b.At.Add(b.Lease+time.Second)) {
		t.Errorf("x's lease ends %v, want %v", exp, b.At.Add(b.Lease))
	}

	// A, meanwhile: lists both, claims only y, drops only y.
	recs, err = s.UnlinkedBlobs(ctx, future(), "", -1)
	noErr(t, err, "UnlinkedBlobs")
	if len(recs) != 2 {
		t.Fatalf("UnlinkedBlobs = %+v, want x and y", recs)
	}
	claimed, err := s.ClaimBlobs(ctx, recs, future(), a)
	noErr(t, err, "A: ClaimBlobs")
	if len(claimed) != 1 || claimed[0].Digest != y {
		t.Errorf("A: ClaimBlobs = %+v, want only y (x is B's)", claimed)
	}
	if ok, err := claimBlob(ctx, s, x, xSize, future(), a); ok || err != nil {
		t.Errorf("A: ClaimBlob(x) = %v, %v; want false: B holds it", ok, err)
	}
	noErr(t, s.DropBlobs(ctx, a.Token, []digest.Digest{x, y}), "A: DropBlobs")
	if rec, err := s.BlobRecord(ctx, x); err != nil || !rec.Deleting {
		t.Fatalf("A dropped B's tombstone: %+v, %v", rec, err)
	}
	_, err = s.BlobRecord(ctx, y)
	wantErr(t, err, meta.ErrBlobNotFound, "BlobRecord(y) after A's run")

	// The client pushes x again after A's run: refused while B holds it.
	err = s.LinkBlob(ctx, "app", x, xSize)
	wantErr(t, err, meta.ErrBlobDeleting, "LinkBlob(x) while B holds it")
	// B wakes up, deletes the bytes and drops its tombstone; then the
	// push goes through, and B (were it to drop again) leaves the live row.
	noErr(t, dropBlob(ctx, s, b.Token, x), "B: DropBlob")
	noErr(t, s.LinkBlob(ctx, "app", x, xSize), "LinkBlob(x) after B's run")
	noErr(t, dropBlob(ctx, s, b.Token, x), "B: DropBlob again")
	if rec, err := s.BlobRecord(ctx, x); err != nil || rec.Deleting {
		t.Errorf("x after the push: %+v, %v", rec, err)
	}
	if _, err := s.BlobLink(ctx, "app", x); err != nil {
		t.Errorf("x's link after the push: %v", err)
	}

	// Takeover: C claims z and crashes; its lease ends. D, at a time
	// within the lease, does not get z; at a time after it, does. C then
	// drops nothing.
	z, zSize := blob("z")
	c := meta.Claim{Token: "C", At: time.Now(), Lease: time.Minute}
	if ok, err := claimBlob(ctx, s, z, zSize, past(), c); !ok || err != nil {
		t.Fatalf("C: ClaimBlob(z) = %v, %v", ok, err)
	}
	d := meta.Claim{Token: "D", At: c.At.Add(30 * time.Second), Lease: time.Minute}
	if ok, err := claimBlob(ctx, s, z, zSize, past(), d); ok || err != nil {
		t.Errorf("D: ClaimBlob(z) within C's lease = %v, %v", ok, err)
	}
	d.At = c.At.Add(2 * time.Minute)
	claimed, err = s.ClaimBlobs(ctx, []meta.BlobRecord{{Digest: z, Size: 1}}, time.Time{}, d)
	noErr(t, err, "D: ClaimBlobs")
	if len(claimed) != 1 || claimed[0].Digest != z || claimed[0].Size != zSize || !claimed[0].ClaimExpires.After(c.At.Add(c.Lease)) {
		t.Errorf("D: ClaimBlobs(z) after C's lease = %+v", claimed)
	}
	noErr(t, dropBlob(ctx, s, c.Token, z), "C: DropBlob")
	if rec, err := s.BlobRecord(ctx, z); err != nil || !rec.Deleting {
		t.Errorf("C dropped D's tombstone: %+v, %v", rec, err)
	}
	noErr(t, dropBlob(ctx, s, d.Token, z), "D: DropBlob")
	_, err = s.BlobRecord(ctx, z)
	wantErr(t, err, meta.ErrBlobNotFound, "BlobRecord(z) after D's drop")

	if _, err := s.ClaimBlobs(ctx, []meta.BlobRecord{{Digest: z, Size: 1}}, past(), meta.Claim{At: time.Now()}); err == nil {
		t.Error("ClaimBlobs with an empty token succeeded")
	}
	if err := s.DropBlobs(ctx, "", []digest.Digest{z}); err == nil {
		t.Error("DropBlobs with an empty token succeeded")
	}
}

// testGCConcurrentCollectors runs two collectors' claim-drop loops over
// the same garbage, in overlapping batches: a blob is never held by both
// at once. (After one drops a blob the other may claim it again, as the
// tombstone of a file with no row: that is a new claim.)
func testGCConcurrentCollectors(t *testing.T, ms meta.Store) {
	s := gcStore(t, ms)
	ctx := t.Context()
	const n = 40
	var ds []digest.Digest
	for i := range n {
		d := link(t, s, "app", fmt.Sprintf("garbage %d", i))[0]
		noErr(t, s.UnlinkBlob(ctx, "app", d), "UnlinkBlob")
		ds = append(ds, d)
	}
	var (
		// holder is who holds each blob, between the return of the
		// ClaimBlobs that took it and the DropBlobs that gives it up: a
		// window inside the claim's real one.
		mu     sync.Mutex
		holder = map[digest.Digest]string{}
		wg     sync.WaitGroup
	)
	for _, token := range []string{"A", "B"} {
		wg.Go(func() {
			for round := range 3 {
				for i := round; i < n; i += 3 {
					cands := make([]meta.BlobRecord, 0, 5)
					for _, d := range ds[i:min(i+5, n)] {
						cands = append(cands, meta.BlobRecord{Digest: d, Size: 1})
					}
					claimed, err := s.ClaimBlobs(ctx, cands, future(), claimOf(token))
					if err != nil {
						t.Error(err)
						return
					}
					got := make([]digest.Digest, len(claimed))
					mu.Lock()
					for j, b := range claimed {
						got[j] = b.Digest
						if h := holder[b.Digest]; h != "" && h != token {
							t.Errorf("blob %s claimed by %s while %s holds it", b.Digest, token, h)
						}
						holder[b.Digest] = token
					}
					mu.Unlock()
					for _, d := range got { // as long as deleting the bytes takes
						if _, err := s.BlobRecord(ctx, d); err != nil {
							t.Error(err)
						}
					}
					mu.Lock()
					for _, d := range got {
						delete(holder, d)
					}
					mu.Unlock()
					if err := s.DropBlobs(ctx, token, got); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for _, d := range ds {
		if _, err := s.BlobRecord(ctx, d); !errors.Is(err, meta.ErrBlobNotFound) {
			t.Errorf("blob %s left: %v", d, err)
		}
	}
}

// testRefreshLink: a stale link's age restarts (gc's grace runs from the
// refresh), a fresh one is untouched, a missing one is ErrBlobNotFound.
func testRefreshLink(t *testing.T, ms meta.Store) {
	s := gcStore(t, ms)
	ctx := t.Context()
	ds := link(t, s, "app", "loose")
	k := meta.LinkKey{Repo: "app", Digest: ds[0]}
	linked := meta.ClockOf(s)() // after the link was made, by the store's clock
	listed := func(before time.Time) bool {
		t.Helper()
		page, err := s.UnreferencedLinks(ctx, before, meta.LinkKey{}, -1)
		noErr(t, err, "UnreferencedLinks")
		return slices.Contains(page, k)
	}
	if !listed(linked.Add(time.Nanosecond)) {
		t.Fatal("the new link is not older than a time taken after it")
	}
	// Not older than the past: left alone.
	noErr(t, s.RefreshLink(ctx, "app", ds[0], past()), "RefreshLink(fresh)")
	if !listed(linked.Add(time.Nanosecond)) {
		t.Error("RefreshLink renewed a link that was not stale")
	}
	noErr(t, s.RefreshLink(ctx, "app", ds[0], future()), "RefreshLink(stale)")
	if listed(linked.Add(time.Nanosecond)) {
		t.Error("after RefreshLink the link still counts as made before the refresh")
	}
	err := s.RefreshLink(ctx, "app", digest.FromString("nope"), future())
	if !errors.Is(err, meta.ErrBlobNotFound) {
		t.Errorf("RefreshLink(missing) = %v, want ErrBlobNotFound", err)
	}
}
