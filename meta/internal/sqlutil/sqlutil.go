// Package sqlutil holds what the SQL metadata backends (meta/sqlite,
// meta/postgres) share that is not SQL: the encoding of times and maps in
// columns, page limits, and the loading of numbered migration files. Each
// backend keeps its own statements, in its own dialect.
package sqlutil

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The instants a unix-nanosecond int64 can hold.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// Now is the time stamped on rows, in unix nanoseconds.
func Now() int64 { return time.Now().UnixNano() }

// NullTime is t in unix nanoseconds, or NULL when t is zero or beyond what
// int64 nanoseconds hold (before 1678, after 2262).
func NullTime(t time.Time) any {
	if t.IsZero() || t.Before(minTime) || t.After(maxTime) {
		return nil
	}
	return t.UnixNano()
}

// Nanos is t in unix nanoseconds, clamped to what an int64 holds (a
// cutoff far in the past or future stays one).
func Nanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// FromNanos is the UTC time of unix nanoseconds n.
func FromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// FromNullNanos is FromNanos, or the zero time for NULL.
func FromNullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return FromNanos(n.Int64)
}

// EncodeMap is m as a JSON object, or NULL when m is empty.
func EncodeMap(m map[string]string) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// DecodeMap reverses EncodeMap; NULL becomes a nil map.
func DecodeMap(s sql.NullString) (map[string]string, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s.String), &m); err != nil {
		return nil, err
	}
	return m, nil
}

// Limit turns a page size into a LIMIT: n < 0 means none.
func Limit(n int) int64 {
	if n < 0 {
		return math.MaxInt64
	}
	return int64(n)
}

// RowsAffected returns the count of a successful Exec.
func RowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// SortedTags is tags sorted, without repeats, never nil.
func SortedTags(tags []string) []string {
	out := slices.Clone(tags)
	slices.Sort(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// LoadMigrations reads migrations/NNNN_description.sql from fsys, in
// order, and checks that they are numbered 1, 2, … without a gap.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name is not NNNN_description.sql", base)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d", m.Name, m.Version, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations")
	}
	return ms, nil
}

// Schema versions: the statements Migrate runs besides the migrations.
const (
	qSchemaVersion       = `SELECT COALESCE(MAX(version), 0) FROM schema_version`
	qInsertSchemaVersion = `INSERT INTO schema_version (version, applied) VALUES ($1, $2)`
)

// Migrate applies the migrations of ms that the database has not seen, in
// order, in tx, recording each in schema_version (created by
// createSchemaVersion, the dialect's CREATE TABLE IF NOT EXISTS), and
// commits: the schema is either at the old version or the new one. A
// database newer than ms is an error.
func Migrate(ctx context.Context, tx *sql.Tx, ms []Migration, createSchemaVersion string, logger *slog.Logger) error {
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, createSchemaVersion); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, qSchemaVersion).Scan(&current); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	latest := ms[len(ms)-1].Version
	if current > latest {
		return fmt.Errorf("migrate: database schema version %d is newer than this binary's %d", current, latest)
	}
	if current == latest {
		return nil
	}
	for _, m := range ms[current:] {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("migrate: %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, qInsertSchemaVersion, m.Version, Now()); err != nil {
			return fmt.Errorf("migrate: %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	logger.InfoContext(ctx, "meta schema migrated", "from", current, "to", latest)
	return nil
}
