package metatest

import (
	"testing"

	"github.com/berth-dev/berth/meta"
)

func testLinkBlob(t *testing.T, s meta.Store) {
	ctx := t.Context()
	d, size := blob("layer")

	_, err := s.BlobLink(ctx, "app", d)
	wantErr(t, err, meta.ErrBlobNotFound, "BlobLink before LinkBlob")

	noErr(t, s.LinkBlob(ctx, "app", d, size), "LinkBlob")
	noErr(t, s.LinkBlob(ctx, "app", d, size), "LinkBlob twice")

	got, err := s.BlobLink(ctx, "app", d)
	noErr(t, err, "BlobLink")
	if got != size {
		t.Errorf("BlobLink size = %d, want %d", got, size)
	}

	_, err = s.BlobLink(ctx, "other", d)
	wantErr(t, err, meta.ErrBlobNotFound, "BlobLink in another repository")
	other, _ := blob("other")
	_, err = s.BlobLink(ctx, "app", other)
	wantErr(t, err, meta.ErrBlobNotFound, "BlobLink of another blob")

	// LinkBlob creates the repository.
	checkStrings(t, "Repositories", repositories(t, s), []string{"app"})

	// The same blob linked in a second repository (a mount).
	noErr(t, s.LinkBlob(ctx, "lib/base", d, size), "LinkBlob in second repo")
	got, err = s.BlobLink(ctx, "lib/base", d)
	noErr(t, err, "BlobLink in second repo")
	if got != size {
		t.Errorf("BlobLink size = %d, want %d", got, size)
	}
	checkStrings(t, "Repositories", repositories(t, s), []string{"app", "lib/base"})
}

func testUnlinkBlob(t *testing.T, s meta.Store) {
	ctx := t.Context()
	d, size := blob("layer")
	noErr(t, s.LinkBlob(ctx, "a", d, size), "LinkBlob a")
	noErr(t, s.LinkBlob(ctx, "b", d, size), "LinkBlob b")

	noErr(t, s.UnlinkBlob(ctx, "a", d), "UnlinkBlob")
	_, err := s.BlobLink(ctx, "a", d)
	wantErr(t, err, meta.ErrBlobNotFound, "BlobLink after UnlinkBlob")
	if _, err := s.BlobLink(ctx, "b", d); err != nil {
		t.Errorf("BlobLink in b after unlinking from a: %v", err)
	}

	err = s.UnlinkBlob(ctx, "a", d)
	wantErr(t, err, meta.ErrBlobNotFound, "UnlinkBlob twice")
	err = s.UnlinkBlob(ctx, "nope", d)
	wantErr(t, err, meta.ErrBlobNotFound, "UnlinkBlob in unknown repository")

	// Linking again after an unlink works.
	noErr(t, s.LinkBlob(ctx, "a", d, size), "LinkBlob again")
	if got, err := s.BlobLink(ctx, "a", d); err != nil || got != size {
		t.Errorf("BlobLink after relink = %d, %v; want %d", got, err, size)
	}
}

func testBlobKnown(t *testing.T, s meta.Store) {
	ctx := t.Context()
	d, size := blob("layer")

	_, err := s.BlobKnown(ctx, d)
	wantErr(t, err, meta.ErrBlobNotFound, "BlobKnown of unknown blob")

	noErr(t, s.LinkBlob(ctx, "a", d, size), "LinkBlob a")
	noErr(t, s.LinkBlob(ctx, "b", d, size), "LinkBlob b")
	got, err := s.BlobKnown(ctx, d)
	noErr(t, err, "BlobKnown")
	if got != size {
		t.Errorf("BlobKnown size = %d, want %d", got, size)
	}

	noErr(t, s.UnlinkBlob(ctx, "a", d), "UnlinkBlob a")
	if got, err := s.BlobKnown(ctx, d); err != nil || got != size {
		t.Errorf("BlobKnown while still linked in b = %d, %v; want %d", got, err, size)
	}
	noErr(t, s.UnlinkBlob(ctx, "b", d), "UnlinkBlob b")
	_, err = s.BlobKnown(ctx, d)
	wantErr(t, err, meta.ErrBlobNotFound, "BlobKnown after every link is gone")
}
