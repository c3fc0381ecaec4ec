// Package sqlstore is the metadata store's code that does not depend on
// the SQL dialect: every method of meta/sqlite's and meta/postgres's
// Store, written once over database/sql. A backend supplies what differs
// (Engine): its statements (Queries), how a write transaction runs (SQLite
// shares one among concurrent writes, PostgreSQL retries SERIALIZABLE
// ones), how a snapshot read begins, and how its errors map.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/meta"
)

// Engine is what a backend gives New.
type Engine struct {
	// Name prefixes the store's errors ("sqlite", "postgres").
	Name string
	// Queries are the dialect's statements.
	Queries *Queries
	// Read runs reads outside write transactions.
	Read *Pool
	// Write runs fn in a write transaction and commits it; fn may run more
	// than once (a retried transaction) and must start from scratch each
	// time. A nil error means the transaction holding fn's work committed.
	Write func(ctx context.Context, fn func(tx *Tx) error) error
	// Exec runs one statement as a write of its own.
	Exec func(ctx context.Context, q string, args ...any) (sql.Result, error)
	// Snapshot are the options of a read transaction over one snapshot.
	Snapshot *sql.TxOptions
	// Clock is the database's clock (nil: this process's). Every time the
	// store writes comes from it, and so should every cutoff compared
	// with those times (meta.Clock).
	Clock func() time.Time
	// TagCache keeps TagBody's answers in memory until a write through
	// this Store changes the tag. Only for a database in which no other
	// process moves or deletes tags (see tagCache).
	TagCache bool
}

// Dialect is what the store's generic code asks of the SQL dialect besides
// its statements.
type Dialect struct {
	// Label is the query argument that names the label or annotation key
	// in the dialect's JSON access (SQLite: a JSON path; PostgreSQL: the
	// key itself).
	Label func(key string) string
	// MapCond writes to b the condition that the JSON object in column
	// (alias.column) has the key in argument $keyArg, and, unless exists,
	// that its value is one of the filter's (in writes " AND expr IN
	// (…)" for the expression of the value).
	MapCond func(b *strings.Builder, column string, keyArg int, exists bool, in func(expr string))
}

// Store is the dialect-independent store. Backends embed it.
type Store struct {
	name  string
	q     *Queries
	r     *Pool
	wr    func(ctx context.Context, fn func(tx *Tx) error) error
	wexec func(ctx context.Context, q string, args ...any) (sql.Result, error)
	snap  *sql.TxOptions
	clock func() time.Time
	tags  *tagCache // nil: TagBody always reads the database
}

// New returns the Store over e.
func New(e Engine) *Store {
	clock := e.Clock
	if clock == nil {
		clock = time.Now
	}
	s := &Store{name: e.Name, q: e.Queries, r: e.Read, wr: e.Write, wexec: e.Exec, snap: e.Snapshot, clock: clock}
	if e.TagCache {
		s.tags = newTagCache(tagCacheBytes, tagCacheEntry)
	}
	return s
}

var _ meta.Clock = (*Store)(nil)

// Now implements meta.Clock: the database's time.
func (s *Store) Now() time.Time { return s.clock() }

// nowNanos is Now in the columns' unit.
func (s *Store) nowNanos() int64 { return s.clock().UnixNano() }

// write runs fn in a write transaction (Engine.Write) and writes the
// events fn recorded last in it.
func (s *Store) write(ctx context.Context, fn func(tx *Tx) error) error {
	return s.wr(ctx, func(tx *Tx) error {
		tx.events = tx.events[:0]
		if err := fn(tx); err != nil {
			return err
		}
		return s.flushEvents(tx)
	})
}

// snapshot begins a read-only transaction over one snapshot.
func (s *Store) snapshot(ctx context.Context) (*Tx, error) {
	return s.r.Begin(ctx, s.snap)
}

// Pool is one *sql.DB, with statements prepared once where the backend
// asks (SQLite: preparing is a large share of a small query's cost, and
// preparing later inside a transaction on the one-connection write pool
// would wait for the connection the transaction holds; pgx caches
// preparations per connection itself).
type Pool struct {
	DB      *sql.DB
	stmts   map[string]*sql.Stmt
	diskErr func(error) error
}

// NewPool prepares queries on db. diskErr maps the driver's "disk full"
// onto an error wrapping syscall.ENOSPC (nil: errors pass unchanged).
func NewPool(ctx context.Context, db *sql.DB, prepare []string, diskErr func(error) error) (*Pool, error) {
	if diskErr == nil {
		diskErr = func(err error) error { return err }
	}
	p := &Pool{DB: db, stmts: make(map[string]*sql.Stmt, len(prepare)), diskErr: diskErr}
	for _, q := range prepare {
		if _, ok := p.stmts[q]; ok || q == "" {
			continue
		}
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
		p.stmts[q] = st
	}
	return p, nil
}

// Exec runs q on the pool.
func (p *Pool) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	var (
		res sql.Result
		err error
	)
	if st, ok := p.stmts[q]; ok {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = p.DB.ExecContext(ctx, q, args...)
	}
	return res, p.diskErr(err)
}

// QueryRow runs q on the pool.
func (p *Pool) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st, ok := p.stmts[q]; ok {
		return st.QueryRowContext(ctx, args...)
	}
	return p.DB.QueryRowContext(ctx, q, args...)
}

// Query runs q on the pool.
func (p *Pool) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st, ok := p.stmts[q]; ok {
		return st.QueryContext(ctx, args...)
	}
	return p.DB.QueryContext(ctx, q, args...)
}

// Begin starts a transaction on the pool.
func (p *Pool) Begin(ctx context.Context, opts *sql.TxOptions) (*Tx, error) {
	tx, err := p.DB.BeginTx(ctx, opts)
	if err != nil {
		return nil, p.diskErr(err)
	}
	return &Tx{Tx: tx, p: p, ctx: ctx}, nil
}

// Close closes the statements and the database; a second call returns nil.
// The statements stay in the map, closed, so that later calls fail with an
// error rather than run unprepared.
func (p *Pool) Close() error {
	var errs []error
	for _, st := range p.stmts {
		errs = append(errs, st.Close())
	}
	errs = append(errs, p.DB.Close())
	return errors.Join(errs...)
}

// Tx runs statements inside a transaction, under the context the
// transaction began with: the ctx its methods take is the caller's and is
// not used, so that one caller's cancellation cannot interrupt a
// transaction that holds other callers' writes (meta/sqlite's group
// commit). Events recorded in a write transaction wait in it until the
// end of the write (flushEvents).
type Tx struct {
	Tx     *sql.Tx
	p      *Pool
	ctx    context.Context
	events []pendingEvent
}

// Context is the context the transaction began with.
func (t *Tx) Context() context.Context { return t.ctx }

// Exec runs q in the transaction.
func (t *Tx) Exec(_ context.Context, q string, args ...any) (sql.Result, error) {
	var (
		res sql.Result
		err error
	)
	if st, ok := t.p.stmts[q]; ok {
		res, err = t.Tx.StmtContext(t.ctx, st).ExecContext(t.ctx, args...)
	} else {
		res, err = t.Tx.ExecContext(t.ctx, q, args...)
	}
	return res, t.p.diskErr(err)
}

// QueryRow runs q in the transaction.
func (t *Tx) QueryRow(_ context.Context, q string, args ...any) *sql.Row {
	if st, ok := t.p.stmts[q]; ok {
		return t.Tx.StmtContext(t.ctx, st).QueryRowContext(t.ctx, args...)
	}
	return t.Tx.QueryRowContext(t.ctx, q, args...)
}

// Query runs q in the transaction.
func (t *Tx) Query(_ context.Context, q string, args ...any) (*sql.Rows, error) {
	if st, ok := t.p.stmts[q]; ok {
		return t.Tx.StmtContext(t.ctx, st).QueryContext(t.ctx, args...)
	}
	return t.Tx.QueryContext(t.ctx, q, args...)
}

// Commit commits the transaction.
func (t *Tx) Commit() error { return t.p.diskErr(t.Tx.Commit()) }

// Rollback rolls the transaction back.
func (t *Tx) Rollback() error { return t.Tx.Rollback() }

// ensureRepo returns the id of the repository named name, creating it.
func (s *Store) ensureRepo(ctx context.Context, tx *Tx, name string, now int64) (int64, error) {
	if _, err := tx.Exec(ctx, s.q.EnsureRepo, name, now); err != nil {
		return 0, err
	}
	var id int64
	err := tx.QueryRow(ctx, s.q.RepoID, name).Scan(&id)
	return id, err
}
