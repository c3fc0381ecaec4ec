package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"path/filepath"
	"runtime"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/berth-dev/berth/meta"
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
	w     *pool // exactly one connection: every write
	r     *pool // query-only connections: reads outside write transactions
	group group // writes waiting to share a transaction (group.go)
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
	ms, err := loadMigrations(migrationFS)
	if err == nil {
		err = migrate(ctx, wdb, ms, logger)
	}
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w, err := newPool(ctx, wdb, writeQueries)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	rdb, err := sql.Open("sqlite", uri+"?"+readParams)
	if err != nil {
		w.close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(n)
	rdb.SetMaxIdleConns(n)
	rdb.SetConnMaxLifetime(0)
	rdb.SetConnMaxIdleTime(0)
	r, err := newPool(ctx, rdb, readQueries)
	if err != nil {
		w.close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	return &Store{w: w, r: r}, nil
}

// Close closes the database. Calls after Close fail; a second Close returns
// nil.
func (s *Store) Close() error {
	if err := errors.Join(s.r.close(), s.w.close()); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// ensureRepo returns the id of the repository named name, creating it.
func ensureRepo(ctx context.Context, tx txn, name string, now int64) (int64, error) {
	if _, err := tx.exec(ctx, qEnsureRepo, name, now); err != nil {
		return 0, err
	}
	var id int64
	err := tx.queryRow(ctx, qRepoID, name).Scan(&id)
	return id, err
}

func now() int64 { return time.Now().UnixNano() }

// The instants a unix-nanosecond int64 can hold.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// nullTime is t in unix nanoseconds, or NULL when t is zero or beyond what
// int64 nanoseconds hold (before 1678, after 2262).
func nullTime(t time.Time) any {
	if t.IsZero() || t.Before(minTime) || t.After(maxTime) {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func fromNullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromNanos(n.Int64)
}

// encodeMap is m as a JSON object, or NULL when m is empty.
func encodeMap(m map[string]string) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// decodeMap reverses encodeMap; NULL becomes a nil map.
func decodeMap(s sql.NullString) (map[string]string, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s.String), &m); err != nil {
		return nil, err
	}
	return m, nil
}

// limit turns a page size into a LIMIT: n < 0 means none.
func limit(n int) int64 {
	if n < 0 {
		return math.MaxInt64
	}
	return int64(n)
}

// rowsAffected returns the count of a successful Exec.
func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
