package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/sqlite"
)

// TestEventsReopen: the outbox and the cursors are in the database, so a
// restart (a new Store on the same file) resumes where the last one
// acknowledged, and the sequence goes on from the highest Seq given.
func TestEventsReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	ctx := t.Context()
	s, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := digest.FromString("config")
	if err := s.LinkBlob(ctx, "app", cfg, 6); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EventCursor(ctx, "hook"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		c := []byte(name)
		m := &meta.Manifest{Repo: "app", Digest: digest.FromBytes(c), Content: c,
			Refs: []meta.Ref{{Digest: cfg, Kind: meta.RefBlob}}}
		if err := s.PutManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.Events(ctx, 0, -1)
	if err != nil || len(evs) != 3 {
		t.Fatalf("Events = %d, %v; want 3", len(evs), err)
	}
	if err := s.SetEventCursor(ctx, "hook", evs[1].Seq); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PruneEvents(ctx, nil, evs[2].Time.Add(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	c, err := s.EventCursor(ctx, "hook")
	if err != nil || c != evs[1].Seq {
		t.Errorf("cursor after reopen = %d, %v; want %d", c, err, evs[1].Seq)
	}
	if last, err := s.LastEventSeq(ctx); err != nil || last != evs[2].Seq {
		t.Errorf("LastEventSeq after reopen = %d, %v; want %d", last, err, evs[2].Seq)
	}
	if err := s.DeleteManifest(ctx, "app", digest.FromBytes([]byte("a"))); err != nil {
		t.Fatal(err)
	}
	after, err := s.Events(ctx, evs[1].Seq, -1)
	if err != nil || len(after) != 1 || after[0].Seq <= evs[2].Seq || after[0].Type != meta.EventManifestDelete {
		t.Errorf("events after the cursor = %+v, %v; want one manifest.delete with Seq > %d", after, err, evs[2].Seq)
	}
}
