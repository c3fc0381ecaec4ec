package postgres

import (
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/testenv/pgtest"
	"github.com/berth-dev/berth/meta"
)

// TestDatabaseClock: with the database's clock an hour ahead of this
// process's, the store stamps rows with the database's time and its Now
// (meta.Clock, which gc and the registry take cutoffs from) agrees, so a
// link made now is young by the store's clock and an hour ahead of this
// process's.
func TestDatabaseClock(t *testing.T) {
	s, err := Open(t.Context(), pgtest.DSN(t), Options{}, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if off := s.ClockOffset(); off.Abs() > time.Second {
		t.Fatalf("offset to a database on this machine = %v, want about 0", off)
	}
	// The same database, its clock read an hour ahead.
	s.clock.query = `SELECT (EXTRACT(EPOCH FROM clock_timestamp() + interval '1 hour') * 1000000)::bigint`
	if err := s.clock.measure(t.Context()); err != nil {
		t.Fatal(err)
	}
	if off := s.ClockOffset(); off < 59*time.Minute || off > 61*time.Minute {
		t.Fatalf("offset = %v, want about 1h", off)
	}
	if d := meta.ClockOf(s)().Sub(time.Now()); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("meta.ClockOf(store) is %v ahead of time.Now, want about 1h", d)
	}

	d := digest.FromString("clock")
	if err := s.LinkBlob(t.Context(), "clock", d, 5); err != nil {
		t.Fatal(err)
	}
	// By this process's clock, half an hour from now is still before the
	// link was made (it was stamped with the database's time).
	links, err := s.UnreferencedLinks(t.Context(), time.Now().Add(30*time.Minute), meta.LinkKey{}, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 0 {
		t.Fatalf("links made before now+30m by this process's clock = %v, want none", links)
	}
	// By the store's clock, a minute from now is after it.
	links, err = s.UnreferencedLinks(t.Context(), s.Now().Add(time.Minute), meta.LinkKey{}, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Digest != d {
		t.Fatalf("links made before the store's now+1m = %v, want [%s]", links, d)
	}
}
