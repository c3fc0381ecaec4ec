package sqlite

import (
	"context"
	"fmt"
	"github.com/berth-dev/berth/meta/internal/sqlstore"
	"sync"
	"sync/atomic"
)

// Group commit. Every write transaction of a Store runs on its one write
// connection, and each COMMIT syncs the WAL (synchronous=FULL): with many
// pushes at once, the syncs, not the statements, are what a push waits
// for. So concurrent writes share transactions: a caller that finds no
// transaction running leads one, running its own write and every write
// queued meanwhile (at most maxGroup), each under a savepoint of its own,
// then commits them all with one sync; it hands the lead to the first
// write still queued, so no caller keeps leading while others keep
// coming.
//
// Each write keeps its own outcome: one whose fn fails is rolled back to
// its savepoint and gets its error, the others commit. A failure that
// leaves no transaction to continue (the disk is full, a savepoint cannot
// be rolled back to) fails every write of the group, none of which is
// committed; the callers see an error, as they would have on their own.
// Nothing is acknowledged before the COMMIT that holds it returns.
//
// The statements of a group run under a context without cancellation: a
// request that goes away in the middle cannot interrupt the connection,
// which in SQLite rolls back the whole transaction, others' writes with
// it. A write whose caller has gone before its turn is skipped.

// maxGroup bounds the writes of one transaction, and so how long the
// writes at its end wait for those at its start.
const maxGroup = 64

// writeReq is one call of Store.write waiting in the group queue.
type writeReq struct {
	ctx  context.Context
	fn   func(tx *sqlstore.Tx) error
	err  error
	done chan struct{} // closed when err is final
	lead chan struct{} // closed when this caller is to lead the next group
}

// group is a Store's queue of writes.
type group struct {
	mu    sync.Mutex
	queue []*writeReq // waiting for a group; non-empty only while busy
	busy  bool        // a caller leads a group
	// commits counts the transactions committed or rolled back (tests).
	commits atomic.Int64
}

// write runs fn in a transaction on the write connection, shared with
// other writes (see above), and returns once the transaction holding it
// has committed, or with fn's error, or the transaction's.
func (s *Store) write(ctx context.Context, fn func(tx *sqlstore.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan struct{}), lead: make(chan struct{})}
	g := &s.group
	g.mu.Lock()
	g.queue = append(g.queue, req)
	if g.busy {
		g.mu.Unlock()
		select {
		case <-req.done:
			return req.err
		case <-req.lead:
		}
	} else {
		g.busy = true
		g.mu.Unlock()
	}
	// This caller leads: its write is first in the queue.
	g.mu.Lock()
	n := min(len(g.queue), maxGroup)
	batch := g.queue[:n:n]
	g.queue = g.queue[n:]
	g.mu.Unlock()

	s.commitGroup(batch)

	g.mu.Lock()
	if len(g.queue) > 0 {
		close(g.queue[0].lead)
	} else {
		g.busy = false
		g.queue = nil
	}
	g.mu.Unlock()
	return req.err
}

// commitGroup runs batch's writes in one transaction and settles each.
func (s *Store) commitGroup(batch []*writeReq) {
	ctx := context.WithoutCancel(batch[0].ctx)
	s.group.commits.Add(1)
	settle := func(err error) {
		for _, r := range batch {
			if r.err == nil {
				r.err = err
			}
			close(r.done)
		}
	}
	tx, err := s.w.Begin(ctx, nil)
	if err != nil {
		settle(err)
		return
	}
	if len(batch) == 1 {
		r := batch[0]
		if r.err = r.fn(tx); r.err != nil {
			tx.Tx.Rollback()
			settle(nil)
			return
		}
		settle(tx.Commit())
		return
	}
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err // gone before its turn: skipped
			continue
		}
		if _, err := tx.Tx.ExecContext(ctx, "SAVEPOINT w"); err != nil {
			tx.Tx.Rollback()
			settle(fmt.Errorf("group commit: savepoint: %w", diskErr(err)))
			return
		}
		if r.err = r.fn(tx); r.err != nil {
			if _, err := tx.Tx.ExecContext(ctx, "ROLLBACK TO w"); err != nil {
				// No transaction left to continue: nothing of the group
				// commits.
				tx.Tx.Rollback()
				settle(fmt.Errorf("group commit: %w", r.err))
				return
			}
		}
		if _, err := tx.Tx.ExecContext(ctx, "RELEASE w"); err != nil {
			tx.Tx.Rollback()
			settle(fmt.Errorf("group commit: release: %w", diskErr(err)))
			return
		}
	}
	settle(tx.Commit())
}
