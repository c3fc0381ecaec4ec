package postgres_test

import (
	"testing"

	"github.com/berth-dev/berth/internal/testenv/pgtest"
	"github.com/berth-dev/berth/meta/metatest"
	"github.com/berth-dev/berth/meta/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn, postgres.Options{}, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// The store is a whole backend (a missing method fails to compile).
var _ metatest.Backend = (*postgres.Store)(nil)

// TestStore runs every contract of meta/metatest on PostgreSQL.
func TestStore(t *testing.T) {
	metatest.RunAll(t, func(t *testing.T) metatest.Backend {
		return open(t, pgtest.DSN(t))
	})
}

// TestTwoHandles runs the two-connection contracts on two Stores (two
// pools, as two replicas) over one database.
func TestTwoHandles(t *testing.T) {
	metatest.RunTwoHandles(t, func(t *testing.T) (metatest.Backend, metatest.Backend) {
		dsn := pgtest.DSN(t)
		return open(t, dsn), open(t, dsn)
	})
}
