package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"runtime"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/internal/sqlstore"
	"github.com/berth-dev/berth/meta/internal/sqlutil"
)

var _ meta.Store = (*Store)(nil)

// Connection parameters. The write pool's transactions begin IMMEDIATE so a
// transaction never has to upgrade a read lock, which is where SQLite
// returns SQLITE_BUSY without waiting. The read pool cannot write.
const (
	writeParams = "_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)" +
		"&_pragma=synchronous(FULL)&_txlock=immediate"
	readParams = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=query_only(1)"
)

// Store is a meta.Store over one SQLite database file. It is safe for
// concurrent use.
type Store struct {
	*sqlstore.Store
	w     *sqlstore.Pool // exactly one connection: every write
	r     *sqlstore.Pool // query-only connections: reads outside write transactions
	group group          // writes waiting to share a transaction (group.go)
}

// Open opens the database at path, creating the file if it does not exist
// (its directory must), and applies any pending migrations. It fails if the
// database was migrated by a newer Berth. ctx bounds the opening and the
// migrations only. A nil logger discards. The caller closes the Store.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// A file: URI with the path escaped, so names holding '?', '#' or '%'
	// stay names.
	uri := (&url.URL{Scheme: "file", Path: abs}).String()

	wdb, err := sql.Open("sqlite", uri+"?"+writeParams)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	ms, err := sqlutil.LoadMigrations(migrationFS)
	if err == nil {
		err = migrate(ctx, wdb, ms, logger)
	}
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w, err := sqlstore.NewPool(ctx, wdb, queries.Statements(), diskErr)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	rdb, err := sql.Open("sqlite", uri+"?"+readParams)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(n)
	rdb.SetMaxIdleConns(n)
	rdb.SetConnMaxLifetime(0)
	rdb.SetConnMaxIdleTime(0)
	r, err := sqlstore.NewPool(ctx, rdb, queries.Statements(), diskErr)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	st := &Store{w: w, r: r}
	st.Store = sqlstore.New(sqlstore.Engine{
		Name:    "sqlite",
		Queries: &queries,
		Read:    r,
		Write:   st.write,
		Exec: func(ctx context.Context, q string, args ...any) (sql.Result, error) {
			return w.Exec(ctx, q, args...)
		},
		Snapshot: &sql.TxOptions{ReadOnly: true},
		// berth serve holds the database file (serve.lock); other
		// processes on it never move or delete a tag.
		TagCache: true,
	})
	return st, nil
}

// Close closes the database. Calls after Close fail; a second Close returns
// nil.
func (s *Store) Close() error {
	if err := errors.Join(s.r.Close(), s.w.Close()); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// BulkLink and BulkManifest are the rows of Load (bulk.go in
// meta/internal/sqlstore).
type (
	BulkLink     = sqlstore.BulkLink
	BulkManifest = sqlstore.BulkManifest
)
