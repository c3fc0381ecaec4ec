// Package postgres is the metadata store on PostgreSQL, for replicas that
// share one database: the same behaviour as meta/sqlite behind the same
// contract (meta/metatest.Backend, RunAll and RunTwoHandles), with
// migrations numbered alike. docs/design-notes.md ("meta/postgres") says
// how SQLite's single-writer guarantees carry over: SERIALIZABLE writes
// retried on conflict, an outbox in commit order, sharded generations.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/internal/sqlstore"
	"github.com/berth-dev/berth/meta/internal/sqlutil"
)

var _ meta.Store = (*Store)(nil)

// Options configure Open.
type Options struct {
	// MaxConns bounds the connection pool (0: 16).
	MaxConns int
}

// Store is a meta.Store over one PostgreSQL database, shared by any number
// of processes (replicas). It is safe for concurrent use.
//
// Every write runs in a SERIALIZABLE transaction, retried (bounded, with
// jittered backoff) when PostgreSQL reports a serialization failure or a
// deadlock: the checks and writes that order pushes against garbage
// collection (docs/design-notes.md, "The locking rule") are then ordered
// as SQLite's single writer orders them, with no row lock to forget.
// Reads of one statement run under READ COMMITTED; reads that must see one
// snapshot (a manifest and its references, the Flatpak index and its
// generation) run in a REPEATABLE READ, READ ONLY transaction.
type Store struct {
	*sqlstore.Store
	db    *sql.DB
	pool  *sqlstore.Pool
	clock *dbClock
	log   *slog.Logger
}

// Open connects to the database named by dsn (a postgres:// URL or
// key=value string), applies pending migrations under an advisory lock
// (replicas starting together migrate once) and returns the Store. ctx
// bounds the connection and the migrations. A nil logger discards.
func Open(ctx context.Context, dsn string, opts Options, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	n := opts.MaxConns
	if n <= 0 {
		n = 16
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: open %s@%s/%s: %w", cfg.User, cfg.Host, cfg.Database, err)
	}
	ms, err := sqlutil.LoadMigrations(migrationFS)
	if err == nil {
		err = migrate(ctx, db, ms, logger)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	pool, err := sqlstore.NewPool(ctx, db, nil, diskErr)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{db: db, pool: pool, log: logger}
	s.clock = &dbClock{db: db, query: clockQuery, log: func(err error) {
		logger.Warn("keeping the last offset to the database's clock", "err", err)
	}}
	if err := s.clock.measure(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	s.Store = sqlstore.New(sqlstore.Engine{
		Name:    "postgres",
		Queries: &queries,
		Read:    pool,
		Write:   s.write,
		Exec: func(ctx context.Context, q string, args ...any) (sql.Result, error) {
			var res sql.Result
			err := s.write(ctx, func(tx *sqlstore.Tx) error {
				var err error
				res, err = tx.Exec(ctx, q, args...)
				return err
			})
			return res, err
		},
		Snapshot: &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
		Clock:    s.clock.now,
	})
	return s, nil
}

var _ = stdlib.GetDefaultDriver // registers the "pgx" database/sql driver

// Close closes the pool. Calls after Close fail.
func (s *Store) Close() error {
	if err := s.pool.Close(); err != nil {
		return fmt.Errorf("postgres: close: %w", err)
	}
	return nil
}

// maxAttempts bounds the tries of a write transaction that keeps meeting
// serialization failures; the last failure is returned (a 5xx the client
// retries).
const maxAttempts = 40

// write runs fn in a SERIALIZABLE transaction and commits it, retrying the
// whole of it on a serialization failure or deadlock. fn must be safe to
// run again: it starts from the values it sets, never appends to what a
// failed attempt left.
func (s *Store) write(ctx context.Context, fn func(tx *sqlstore.Tx) error) error {
	var err error
	for attempt := range maxAttempts {
		if err = s.writeOnce(ctx, fn); !retryable(err) {
			return err
		}
		// Jittered backoff: 1, 2, 4 … ms, at most 50 ms.
		d := time.Duration(mrand.Int64N(int64(min(time.Millisecond<<min(attempt, 7), 100*time.Millisecond)) + 1))
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(d):
		}
	}
	return err
}

func (s *Store) writeOnce(ctx context.Context, fn func(tx *sqlstore.Tx) error) error {
	tx, err := s.pool.Begin(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// retryable: PostgreSQL aborted the transaction for another's sake
// (serialization_failure, deadlock_detected); running it again may
// succeed.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// diskErr marks PostgreSQL's disk_full (53100) as ENOSPC, like
// meta/sqlite does with SQLITE_FULL.
func diskErr(err error) error {
	var pe *pgconn.PgError
	if err != nil && errors.As(err, &pe) && pe.Code == "53100" {
		return fmt.Errorf("%w (%w)", err, syscall.ENOSPC)
	}
	return err
}

// serveLock is the advisory lock key every berth serve of the database
// holds shared, and a repair that must know no server runs takes
// exclusively ("berthsrv").
const serveLock = 0x6265727468737276

// HoldServing takes the serve lock shared on a connection of its own, for
// as long as the process serves (release, or the connection's end when
// the process dies, gives it up).
func (s *Store) HoldServing(ctx context.Context) (release func(), err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: serve lock: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock_shared($1)`, serveLock); err != nil {
		conn.Close()
		return nil, fmt.Errorf("postgres: serve lock: %w", err)
	}
	return func() {
		conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock_shared($1)`, serveLock)
		conn.Close()
	}, nil
}

// TryExclusive takes the serve lock exclusively if no berth serve holds
// it: ok false means a server runs on this database.
func (s *Store) TryExclusive(ctx context.Context) (release func(), ok bool, err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("postgres: exclusive lock: %w", err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, serveLock).Scan(&ok); err != nil || !ok {
		conn.Close()
		if err != nil {
			return nil, false, fmt.Errorf("postgres: exclusive lock: %w", err)
		}
		return nil, false, nil
	}
	return func() {
		conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, serveLock)
		conn.Close()
	}, true, nil
}
