package sqlite

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

// The events outbox (migration 0006). Events are written by the changes
// themselves (manifests.go, blobs.go) through insertEvent, inside their
// transactions.
const (
	qInsertEvent = `INSERT INTO events (id, type, repo, actor, created, payload) VALUES ($1, $2, $3, $4, $5, $6)`
	qEvents      = `SELECT seq, id, type, repo, actor, created, payload FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`
	// sqlite_sequence keeps the highest seq ever given, pruned or not.
	qLastEventSeq = `SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)`
	qInitCursor   = `INSERT INTO event_cursors (consumer, seq, updated)
VALUES ($1, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0), $2)
ON CONFLICT (consumer) DO NOTHING`
	qCursor    = `SELECT seq FROM event_cursors WHERE consumer = $1`
	qSetCursor = `INSERT INTO event_cursors (consumer, seq, updated) VALUES ($1, $2, $3)
ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq, updated = excluded.updated
WHERE excluded.seq > event_cursors.seq`
	// PruneEvents deletes at most $3 rows per statement (a short write
	// transaction however large the backlog): those written before $1 at
	// or below the lowest cursor of the consumers named in $2 (a JSON
	// array; none named: no bound).
	qPruneEvents = `DELETE FROM events WHERE seq IN (
    SELECT seq FROM events
    WHERE created < $1
      AND seq <= COALESCE((SELECT MIN(c.seq) FROM event_cursors c
                           WHERE c.consumer IN (SELECT k.value FROM json_each($2) k)),
                          CASE WHEN json_array_length($2) = 0 THEN 9223372036854775807 ELSE 0 END)
    ORDER BY seq LIMIT $3)`
	// Tags, for tag events: what a tag points at now, and the tags of a
	// manifest about to be deleted.
	qTagDigest = `SELECT digest FROM tags WHERE repo_id = $1 AND name = $2`
	qTagsOf    = `SELECT name FROM tags WHERE repo_id = $1 AND digest = $2 ORDER BY name`
)

// pruneBatch is the most events one pruning statement deletes.
const pruneBatch = 10_000

// insertEvent writes one event in tx. The actor comes from ctx
// (meta.WithActor).
func insertEvent(ctx context.Context, tx txn, typ, repo string, payload any, t int64) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("event %s: %w", typ, err)
	}
	if _, err := tx.exec(ctx, qInsertEvent, rand.Text(), typ, repo, meta.ActorFrom(ctx), t, string(b)); err != nil {
		return fmt.Errorf("event %s: %w", typ, err)
	}
	return nil
}

// Events implements meta.Outbox, on the read pool.
func (s *Store) Events(ctx context.Context, after int64, n int) ([]meta.Event, error) {
	rows, err := s.r.query(ctx, qEvents, after, limit(n))
	if err != nil {
		return nil, fmt.Errorf("sqlite: events after %d: %w", after, err)
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
			return nil, fmt.Errorf("sqlite: events after %d: %w", after, err)
		}
		ev.Time, ev.Payload = fromNanos(created), []byte(payload)
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: events after %d: %w", after, err)
	}
	return out, nil
}

// LastEventSeq implements meta.Outbox.
func (s *Store) LastEventSeq(ctx context.Context) (int64, error) {
	var n int64
	if err := s.r.queryRow(ctx, qLastEventSeq).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: last event: %w", err)
	}
	return n, nil
}

// EventCursor implements meta.Outbox: creating the cursor and reading it
// are one transaction.
func (s *Store) EventCursor(ctx context.Context, consumer string) (int64, error) {
	var seq int64
	err := s.write(ctx, func(tx txn) error {
		if _, err := tx.exec(ctx, qInitCursor, consumer, now()); err != nil {
			return err
		}
		return tx.queryRow(ctx, qCursor, consumer).Scan(&seq)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: event cursor of %s: %w", consumer, err)
	}
	return seq, nil
}

// SetEventCursor implements meta.Outbox.
func (s *Store) SetEventCursor(ctx context.Context, consumer string, seq int64) error {
	if _, err := s.w.exec(ctx, qSetCursor, consumer, seq, now()); err != nil {
		return fmt.Errorf("sqlite: set event cursor of %s: %w", consumer, err)
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
		return 0, fmt.Errorf("sqlite: prune events: %w", err)
	}
	var total int64
	for {
		n, err := rowsAffected(s.w.exec(ctx, qPruneEvents, nanos(before), string(arg), pruneBatch))
		total += n
		if err != nil {
			return total, fmt.Errorf("sqlite: prune events: %w", err)
		}
		if n < pruneBatch {
			return total, nil
		}
	}
}

// RecordGCRun implements meta.GCRunRecorder.
func (s *Store) RecordGCRun(ctx context.Context, r meta.GCRun) error {
	err := s.write(ctx, func(tx txn) error {
		return insertEvent(ctx, tx, meta.EventGCRun, "", r, now())
	})
	if err != nil {
		return fmt.Errorf("sqlite: record gc run: %w", err)
	}
	return nil
}
