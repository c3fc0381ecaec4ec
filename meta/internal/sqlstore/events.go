package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/berth-dev/berth/meta"
)

var (
	_ meta.Outbox        = (*Store)(nil)
	_ meta.GCRunRecorder = (*Store)(nil)
)

// The events outbox (migration 0006). Events are recorded by the changes
// themselves (manifests.go, blobs.go) through insertEvent, and written at
// the end of their writes.

// pruneBatch is the most events one pruning statement deletes.
const pruneBatch = 10_000

// pendingEvent is an event a write will write at its end.
type pendingEvent struct {
	id, typ, repo, actor string
	created              int64
	payload              string
}

// insertEvent records an event of the write running in tx; flushEvents
// writes it. The actor comes from ctx (meta.WithActor).
func (s *Store) insertEvent(ctx context.Context, tx *Tx, typ, repo string, payload any, t int64) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("event %s: %w", typ, err)
	}
	tx.events = append(tx.events, pendingEvent{id: rand.Text(), typ: typ, repo: repo,
		actor: meta.ActorFrom(ctx), created: t, payload: string(b)})
	return nil
}

// flushEvents writes the events of the write that just ran in tx, last in
// it. Where the dialect has an outbox lock (Queries.LockOutbox:
// PostgreSQL's transaction advisory lock), it is taken first: event-writing
// transactions then take their seq and commit one after another, so seq
// follows commit order and a reader never sees a hole that a later commit
// fills; the lock is held from here to the commit only. SQLite's single
// writer orders them already.
func (s *Store) flushEvents(tx *Tx) error {
	if len(tx.events) == 0 {
		return nil
	}
	if s.q.LockOutbox != "" {
		if _, err := tx.Exec(tx.ctx, s.q.LockOutbox); err != nil {
			return fmt.Errorf("outbox lock: %w", err)
		}
	}
	for _, ev := range tx.events {
		if _, err := tx.Exec(tx.ctx, s.q.InsertEvent, ev.id, ev.typ, ev.repo, ev.actor, ev.created, ev.payload); err != nil {
			return fmt.Errorf("event %s: %w", ev.typ, err)
		}
	}
	tx.events = tx.events[:0]
	return nil
}

// Events implements meta.Outbox, on the read pool.
func (s *Store) Events(ctx context.Context, after int64, n int) ([]meta.Event, error) {
	rows, err := s.r.Query(ctx, s.q.Events, after, limit(n))
	if err != nil {
		return nil, fmt.Errorf("%s: events after %d: %w", s.name, after, err)
	}
	defer rows.Close()
	out := []meta.Event{}
	for rows.Next() {
		var (
			ev      meta.Event
			created int64
			payload string
		)
		if err := rows.Scan(&ev.Seq, &ev.ID, &ev.Type, &ev.Repo, &ev.Actor, &created, &payload); err != nil {
			return nil, fmt.Errorf("%s: events after %d: %w", s.name, after, err)
		}
		ev.Time, ev.Payload = fromNanos(created), []byte(payload)
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: events after %d: %w", s.name, after, err)
	}
	return out, nil
}

// LastEventSeq implements meta.Outbox.
func (s *Store) LastEventSeq(ctx context.Context) (int64, error) {
	var n int64
	if err := s.r.QueryRow(ctx, s.q.LastEventSeq).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: last event: %w", s.name, err)
	}
	return n, nil
}

// EventCursor implements meta.Outbox: creating the cursor and reading it
// are one transaction.
func (s *Store) EventCursor(ctx context.Context, consumer string) (int64, error) {
	var seq int64
	err := s.write(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, s.q.InitCursor, consumer, s.nowNanos()); err != nil {
			return err
		}
		return tx.QueryRow(ctx, s.q.Cursor, consumer).Scan(&seq)
	})
	if err != nil {
		return 0, fmt.Errorf("%s: event cursor of %s: %w", s.name, consumer, err)
	}
	return seq, nil
}

// SetEventCursor implements meta.Outbox.
func (s *Store) SetEventCursor(ctx context.Context, consumer string, seq int64) error {
	if _, err := s.wexec(ctx, s.q.SetCursor, consumer, seq, s.nowNanos()); err != nil {
		return fmt.Errorf("%s: set event cursor of %s: %w", s.name, consumer, err)
	}
	return nil
}

// PruneEvents implements meta.Outbox, in batches of pruneBatch rows (one
// transaction each), so a push never waits long behind it.
func (s *Store) PruneEvents(ctx context.Context, consumers []string, before time.Time) (int64, error) {
	if consumers == nil {
		consumers = []string{}
	}
	arg, err := json.Marshal(consumers)
	if err != nil {
		return 0, fmt.Errorf("%s: prune events: %w", s.name, err)
	}
	var total int64
	for {
		n, err := rowsAffected(s.wexec(ctx, s.q.PruneEvents, nanos(before), string(arg), pruneBatch))
		total += n
		if err != nil {
			return total, fmt.Errorf("%s: prune events: %w", s.name, err)
		}
		if n < pruneBatch {
			return total, nil
		}
	}
}

// RecordGCRun implements meta.GCRunRecorder.
func (s *Store) RecordGCRun(ctx context.Context, r meta.GCRun) error {
	err := s.write(ctx, func(tx *Tx) error {
		return s.insertEvent(ctx, tx, meta.EventGCRun, "", r, s.nowNanos())
	})
	if err != nil {
		return fmt.Errorf("%s: record gc run: %w", s.name, err)
	}
	return nil
}
