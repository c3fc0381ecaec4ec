package metatest

import (
	"context"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// ClockStore is a store with its clock, and the gc listing that compares a
// cutoff with the times it stamped.
type ClockStore interface {
	meta.Store
	meta.Clock
	UnreferencedLinks(ctx context.Context, before time.Time, after meta.LinkKey, n int) ([]meta.LinkKey, error)
}

// RunClock: the times a store writes are its Now (what gc and the
// registry compute cutoffs from), so a link made between two readings of
// Now is after the first and before the second.
func RunClock(t *testing.T, newStore func(t *testing.T) ClockStore) {
	s := newStore(t)
	ctx := t.Context()
	before := s.Now()
	d := digest.FromString("clock")
	if err := s.LinkBlob(ctx, "clock", d, 5); err != nil {
		t.Fatal(err)
	}
	after := s.Now()
	if after.Before(before) {
		t.Fatalf("Now went back: %v then %v", before, after)
	}
	links, err := s.UnreferencedLinks(ctx, before, meta.LinkKey{}, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 0 {
		t.Fatalf("links made before Now() read before linking = %v, want none", links)
	}
	links, err = s.UnreferencedLinks(ctx, after.Add(time.Nanosecond), meta.LinkKey{}, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Digest != d {
		t.Fatalf("links made before Now() read after linking = %v, want [%s]", links, d)
	}
}
