package postgres

import (
	"database/sql"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv/pgtest"
)

// TestLastEventSeqCommitted: LastEventSeq never returns the seq of an
// event whose transaction has not committed (a sequence is not
// transactional): it waits for the writer holding the outbox lock.
func TestLastEventSeqCommitted(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := Open(t.Context(), dsn, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// A writer as flushEvents is one: the outbox lock, then nextval, not
	// yet committed.
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(queries.LockOutbox); err != nil {
		t.Fatal(err)
	}
	var pending int64
	if err := tx.QueryRow(`SELECT nextval('events_seq')`).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	got := make(chan int64, 1)
	go func() {
		n, err := s.LastEventSeq(t.Context())
		if err != nil {
			t.Error(err)
		}
		got <- n
	}()
	select {
	case n := <-got:
		t.Fatalf("LastEventSeq = %d while the writer of seq %d has not committed", n, pending)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != pending {
		t.Fatalf("LastEventSeq after the commit = %d, want %d", n, pending)
	}
}
