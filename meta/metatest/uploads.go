package metatest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

func testUploadCreateGet(t *testing.T, s meta.Store) {
	ctx := t.Context()
	created := time.Date(2025, 1, 2, 3, 4, 5, 600700800, time.UTC)
	u := meta.Upload{
		ID:      "4b1d7d1c-0000-4000-8000-000000000001",
		Repo:    "lib/app",
		Offset:  0,
		State:   []byte(`{"size":0}`),
		Created: created,
		Updated: created,
	}
	noErr(t, s.CreateUpload(ctx, u), "CreateUpload")

	got, err := s.GetUpload(ctx, "lib/app", u.ID)
	noErr(t, err, "GetUpload")
	checkUpload(t, got, u)

	_, err = s.GetUpload(ctx, "lib/other", u.ID)
	wantErr(t, err, meta.ErrUploadNotFound, "GetUpload in the wrong repository")
	_, err = s.GetUpload(ctx, "lib/app", "no-such-upload")
	wantErr(t, err, meta.ErrUploadNotFound, "GetUpload of unknown id")

	// An upload does not make a repository.
	checkStrings(t, "Repositories", repositories(t, s), []string{})

	// Zero times are set by the store; a nil state is fine.
	before := time.Now()
	u2 := meta.Upload{ID: "second", Repo: "lib/app"}
	noErr(t, s.CreateUpload(ctx, u2), "CreateUpload with zero times")
	after := time.Now()
	got, err = s.GetUpload(ctx, "lib/app", "second")
	noErr(t, err, "GetUpload(second)")
	checkTime(t, "Created", got.Created, before, after)
	checkTime(t, "Updated", got.Updated, before, after)
	if len(got.State) != 0 || got.Offset != 0 {
		t.Errorf("GetUpload(second) = offset %d state %q, want 0 and empty", got.Offset, got.State)
	}
}

func checkUpload(t *testing.T, got, want meta.Upload) {
	t.Helper()
	if got.ID != want.ID || got.Repo != want.Repo || got.Offset != want.Offset || !bytes.Equal(got.State, want.State) {
		t.Errorf("upload = {%s %s %d %q}, want {%s %s %d %q}", got.ID, got.Repo, got.Offset, got.State, want.ID, want.Repo, want.Offset, want.State)
	}
	if !got.Created.Equal(want.Created) {
		t.Errorf("Created = %v, want %v", got.Created, want.Created)
	}
	if !got.Updated.Equal(want.Updated) {
		t.Errorf("Updated = %v, want %v", got.Updated, want.Updated)
	}
}

func testUploadCreateDuplicate(t *testing.T, s meta.Store) {
	ctx := t.Context()
	u := meta.Upload{ID: "dup", Repo: "app", State: []byte("one")}
	noErr(t, s.CreateUpload(ctx, u), "CreateUpload")
	u2 := meta.Upload{ID: "dup", Repo: "other", Offset: 5, State: []byte("two")}
	if err := s.CreateUpload(ctx, u2); err == nil {
		t.Fatal("CreateUpload with an id in use: no error")
	}
	got, err := s.GetUpload(ctx, "app", "dup")
	noErr(t, err, "GetUpload")
	if got.Offset != 0 || string(got.State) != "one" {
		t.Errorf("upload changed by a failed create: offset %d state %q", got.Offset, got.State)
	}
}

func testUploadUpdate(t *testing.T, s meta.Store) {
	ctx := t.Context()
	created := time.Now().Add(-time.Minute)
	u := meta.Upload{ID: "up", Repo: "app", State: []byte("s0"), Created: created, Updated: created}
	noErr(t, s.CreateUpload(ctx, u), "CreateUpload")

	before := time.Now()
	noErr(t, s.UpdateUpload(ctx, "up", 0, 100, []byte("s100")), "UpdateUpload 0→100")
	after := time.Now()
	got, err := s.GetUpload(ctx, "app", "up")
	noErr(t, err, "GetUpload")
	if got.Offset != 100 || string(got.State) != "s100" {
		t.Errorf("after update: offset %d state %q, want 100 s100", got.Offset, got.State)
	}
	if !got.Created.Equal(created) {
		t.Errorf("Created = %v after update, want %v", got.Created, created)
	}
	checkTime(t, "Updated", got.Updated, before, after)

	// A stale prevOffset (a replayed or concurrent chunk) changes nothing.
	err = s.UpdateUpload(ctx, "up", 0, 50, []byte("stale"))
	wantErr(t, err, meta.ErrUploadConflict, "UpdateUpload with stale prevOffset")
	err = s.UpdateUpload(ctx, "up", 150, 200, []byte("ahead"))
	wantErr(t, err, meta.ErrUploadConflict, "UpdateUpload with prevOffset ahead")
	got, err = s.GetUpload(ctx, "app", "up")
	noErr(t, err, "GetUpload")
	if got.Offset != 100 || string(got.State) != "s100" {
		t.Errorf("after conflicts: offset %d state %q, want 100 s100", got.Offset, got.State)
	}

	noErr(t, s.UpdateUpload(ctx, "up", 100, 250, []byte("s250")), "UpdateUpload 100→250")
	got, err = s.GetUpload(ctx, "app", "up")
	noErr(t, err, "GetUpload")
	if got.Offset != 250 || string(got.State) != "s250" {
		t.Errorf("offset %d state %q, want 250 s250", got.Offset, got.State)
	}

	err = s.UpdateUpload(ctx, "nope", 0, 1, nil)
	wantErr(t, err, meta.ErrUploadNotFound, "UpdateUpload of unknown id")
}

func testUploadUpdateRace(t *testing.T, s meta.Store) {
	ctx := t.Context()
	noErr(t, s.CreateUpload(ctx, meta.Upload{ID: "race", Repo: "app"}), "CreateUpload")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.UpdateUpload(ctx, "race", 0, int64(10+i), []byte{byte(i)})
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("updates %d and %d from the same offset both succeeded", winner, i)
			}
			winner = i
		case errors.Is(err, meta.ErrUploadConflict):
		default:
			t.Errorf("update %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no update succeeded")
	}
	got, err := s.GetUpload(ctx, "app", "race")
	noErr(t, err, "GetUpload")
	if got.Offset != int64(10+winner) || !bytes.Equal(got.State, []byte{byte(winner)}) {
		t.Errorf("upload = offset %d state %v, want the winner's %d", got.Offset, got.State, 10+winner)
	}
}

func testUploadDelete(t *testing.T, s meta.Store) {
	ctx := t.Context()
	noErr(t, s.CreateUpload(ctx, meta.Upload{ID: "a", Repo: "app"}), "CreateUpload a")
	noErr(t, s.CreateUpload(ctx, meta.Upload{ID: "b", Repo: "app"}), "CreateUpload b")
	noErr(t, s.DeleteUpload(ctx, "a"), "DeleteUpload")
	_, err := s.GetUpload(ctx, "app", "a")
	wantErr(t, err, meta.ErrUploadNotFound, "GetUpload after delete")
	err = s.DeleteUpload(ctx, "a")
	wantErr(t, err, meta.ErrUploadNotFound, "DeleteUpload twice")
	err = s.UpdateUpload(ctx, "a", 0, 1, nil)
	wantErr(t, err, meta.ErrUploadNotFound, "UpdateUpload after delete")
	if _, err := s.GetUpload(ctx, "app", "b"); err != nil {
		t.Errorf("GetUpload(b) after deleting a: %v", err)
	}
}

func testUploadFinish(t *testing.T, s meta.Store) {
	ctx := t.Context()
	d := digest.FromString("finished")
	noErr(t, s.CreateUpload(ctx, meta.Upload{ID: "a", Repo: "lib/app"}), "CreateUpload a")
	noErr(t, s.CreateUpload(ctx, meta.Upload{ID: "b", Repo: "lib/app"}), "CreateUpload b")
	noErr(t, s.FinishUpload(ctx, "a", "lib/app", d, 8), "FinishUpload")
	_, err := s.GetUpload(ctx, "lib/app", "a")
	wantErr(t, err, meta.ErrUploadNotFound, "GetUpload after FinishUpload")
	if size, err := s.BlobLink(ctx, "lib/app", d); err != nil || size != 8 {
		t.Errorf("BlobLink after FinishUpload = %d, %v; want 8", size, err)
	}
	// The repository exists, as after LinkBlob.
	checkStrings(t, "Repositories", repositories(t, s), []string{"lib/app"})
	if _, err := s.GetUpload(ctx, "lib/app", "b"); err != nil {
		t.Errorf("GetUpload(b) after finishing a: %v", err)
	}
	// A session already gone still links (the push is not failed for it).
	d2 := digest.FromString("finished again")
	noErr(t, s.FinishUpload(ctx, "a", "other", d2, 14), "FinishUpload of a gone session")
	if size, err := s.BlobLink(ctx, "other", d2); err != nil || size != 14 {
		t.Errorf("BlobLink after FinishUpload of a gone session = %d, %v; want 14", size, err)
	}
}
