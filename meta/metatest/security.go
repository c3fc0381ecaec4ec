package metatest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// The store methods issue 8 (security) added: the repositories linking a
// digest (a mount without from considers only those the caller may read),
// referrers one at a time (bounded memory), and capped upload sessions.

func testLinkingRepositories(t *testing.T, s meta.Store) {
	ctx := t.Context()
	var want []string
	for i := range 7 {
		repo := fmt.Sprintf("team/r%d", i)
		link(t, s, repo, "shared")
		want = append(want, repo)
	}
	link(t, s, "alone", "other")
	d, _ := blob("shared")

	// Paged, in byte order, two at a time.
	var got []string
	after := ""
	for {
		page, err := s.LinkingRepositories(ctx, d, after, 2)
		noErr(t, err, "LinkingRepositories")
		if len(page) > 2 {
			t.Fatalf("page of %d, asked for 2", len(page))
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1]
	}
	checkStrings(t, "LinkingRepositories paged", got, want)

	all, err := s.LinkingRepositories(ctx, d, "", -1)
	noErr(t, err, "LinkingRepositories(n<0)")
	checkStrings(t, "LinkingRepositories(all)", all, want)

	// An unlinked repository drops out; an unknown digest has none.
	noErr(t, s.UnlinkBlob(ctx, "team/r3", d), "UnlinkBlob")
	all, err = s.LinkingRepositories(ctx, d, "team/r2", -1)
	noErr(t, err, "LinkingRepositories after unlink")
	checkStrings(t, "LinkingRepositories after unlink", all, []string{"team/r4", "team/r5", "team/r6"})
	none, err := s.LinkingRepositories(ctx, digest.FromString("nope"), "", 10)
	noErr(t, err, "LinkingRepositories(unknown)")
	if none == nil || len(none) != 0 {
		t.Errorf("LinkingRepositories(unknown) = %#v, want empty and not nil", none)
	}
	zero, err := s.LinkingRepositories(ctx, d, "", 0)
	noErr(t, err, "LinkingRepositories(n=0)")
	if zero == nil || len(zero) != 0 {
		t.Errorf("LinkingRepositories(n=0) = %#v, want empty and not nil", zero)
	}
}

// testEachReferrer: EachReferrer lists what Referrers lists, in order, in
// any number of batches (more than a backend's internal batch, with large
// annotations), and stops when fn returns an error.
func testEachReferrer(t *testing.T, s meta.Store) {
	ctx := t.Context()
	ds := link(t, s, "app", "config")
	subject := image("app", "subject", ds[0])
	put(t, s, subject, "latest")
	const n = 150
	big := strings.Repeat("x", 20<<10)
	for i := range n {
		m := image("app", fmt.Sprintf("ref%d", i), ds[0])
		m.Subject = subject.Digest
		m.ArtifactType = "application/vnd.example"
		m.Annotations = map[string]string{"i": fmt.Sprint(i), "big": big}
		put(t, s, m)
	}
	want, err := s.Referrers(ctx, "app", subject.Digest, "", "", -1)
	noErr(t, err, "Referrers")
	if len(want) != n {
		t.Fatalf("Referrers = %d, want %d", len(want), n)
	}
	var got []meta.Descriptor
	noErr(t, s.EachReferrer(ctx, "app", subject.Digest, "", "", -1, func(d meta.Descriptor) error {
		got = append(got, d)
		return nil
	}), "EachReferrer")
	if len(got) != n {
		t.Fatalf("EachReferrer saw %d, want %d", len(got), n)
	}
	for i := range got {
		if got[i].Digest != want[i].Digest || got[i].Annotations["i"] != want[i].Annotations["i"] || got[i].Annotations["big"] != big {
			t.Fatalf("EachReferrer[%d] = %s, Referrers[%d] = %s", i, got[i].Digest, i, want[i].Digest)
		}
	}
	// A limit and a cursor, as Referrers takes them.
	got = got[:0]
	noErr(t, s.EachReferrer(ctx, "app", subject.Digest, "application/vnd.example", want[9].Digest, 100, func(d meta.Descriptor) error {
		got = append(got, d)
		return nil
	}), "EachReferrer(after, n)")
	if len(got) != 100 || got[0].Digest != want[10].Digest || got[99].Digest != want[109].Digest {
		t.Fatalf("EachReferrer(after 9, 100) = %d from %v", len(got), got[0].Digest)
	}
	// fn's error stops the walk and is returned.
	stop := errors.New("stop")
	seen := 0
	err = s.EachReferrer(ctx, "app", subject.Digest, "", "", -1, func(meta.Descriptor) error {
		seen++
		if seen == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || seen != 3 {
		t.Fatalf("EachReferrer with a failing fn: err %v after %d, want stop after 3", err, seen)
	}
	// No repository, no subject: nothing, no error.
	noErr(t, s.EachReferrer(ctx, "nope", subject.Digest, "", "", -1, func(meta.Descriptor) error {
		t.Fatal("a referrer in an unknown repository")
		return nil
	}), "EachReferrer(unknown repo)")
}

func testUploadClient(t *testing.T, s meta.Store) {
	ctx := t.Context()
	noErr(t, s.CreateUpload(ctx, meta.Upload{ID: "c1", Repo: "app", Client: "addr:192.0.2.1"}), "CreateUpload")
	got, err := s.GetUpload(ctx, "app", "c1")
	noErr(t, err, "GetUpload")
	if got.Client != "addr:192.0.2.1" {
		t.Errorf("Client = %q, want addr:192.0.2.1", got.Client)
	}
}

func testUploadCapped(t *testing.T, s meta.Store) {
	ctx := t.Context()
	caps := meta.UploadCaps{PerRepository: 3, PerClient: 2}
	create := func(id, repo, client string) error {
		return s.CreateUploadCapped(ctx, meta.Upload{ID: id, Repo: repo, Client: client}, caps)
	}
	noErr(t, create("a1", "app", "alice"), "first of alice")
	noErr(t, create("a2", "app", "alice"), "second of alice")
	err := create("a3", "other", "alice")
	wantErr(t, err, meta.ErrTooManyUploads, "third of alice (per-client cap, another repository)")
	var tm *meta.TooManyUploadsError
	if !errors.As(err, &tm) || tm.Of != "client" || tm.Limit != 2 {
		t.Errorf("error %v, want a TooManyUploadsError of the client with limit 2", err)
	}
	if _, err := s.GetUpload(ctx, "other", "a3"); !errors.Is(err, meta.ErrUploadNotFound) {
		t.Errorf("a refused session was stored: %v", err)
	}
	noErr(t, create("b1", "app", "bob"), "bob in app (third in app)")
	err = create("b2", "app", "bob")
	wantErr(t, err, meta.ErrTooManyUploads, "fourth in app (per-repository cap)")
	if !errors.As(err, &tm) || tm.Of != "repository" || tm.Limit != 3 {
		t.Errorf("error %v, want a TooManyUploadsError of the repository with limit 3", err)
	}
	// Sessions without a client count against their repository only; a
	// cap of 0 is no cap.
	noErr(t, s.CreateUploadCapped(ctx, meta.Upload{ID: "n1", Repo: "free"}, meta.UploadCaps{PerClient: 1}), "no client 1")
	noErr(t, s.CreateUploadCapped(ctx, meta.Upload{ID: "n2", Repo: "free"}, meta.UploadCaps{PerClient: 1}), "no client 2")
	noErr(t, s.CreateUploadCapped(ctx, meta.Upload{ID: "n3", Repo: "app", Client: "alice"}, meta.UploadCaps{}), "no caps")
	// An ended session frees its place.
	noErr(t, s.DeleteUpload(ctx, "a1"), "DeleteUpload")
	noErr(t, s.DeleteUpload(ctx, "n3"), "DeleteUpload")
	noErr(t, create("a4", "other", "alice"), "alice after one of hers ended")
	// Duplicate ids still fail.
	if err := create("a4", "third", "carol"); err == nil || errors.Is(err, meta.ErrTooManyUploads) {
		t.Errorf("duplicate id: %v, want an error that is not ErrTooManyUploads", err)
	}
}

// testUploadCappedConcurrent: concurrent creators never pass a cap together.
func testUploadCappedConcurrent(t *testing.T, s meta.Store) {
	ctx := t.Context()
	const tries, limit = 24, 5
	var wg sync.WaitGroup
	errs := make([]error, tries)
	for i := range tries {
		wg.Go(func() {
			errs[i] = s.CreateUploadCapped(ctx, meta.Upload{ID: fmt.Sprintf("u%02d", i), Repo: "app", Client: fmt.Sprintf("c%d", i)}, meta.UploadCaps{PerRepository: limit})
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, meta.ErrTooManyUploads):
		default:
			t.Errorf("create %d: %v", i, err)
		}
	}
	if ok != limit {
		t.Fatalf("%d sessions created concurrently under a cap of %d", ok, limit)
	}
}
