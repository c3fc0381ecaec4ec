package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"log/slog"

	"github.com/berth-dev/berth/meta/internal/sqlutil"
)

// Migrations: numbered alike to meta/sqlite's, one transaction for all
// pending ones, applied under a session advisory lock so that replicas
// starting together apply them once (the others wait, then find nothing
// to do).

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the advisory lock key of migrations ("berthmig").
const migrationLock = 0x626572746d6967

const (
	qCreateSchemaVersion = `CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied BIGINT NOT NULL
)`
)

// migrate applies the migrations db lacks, and fails if db was migrated by
// a newer Berth.
func migrate(ctx context.Context, db *sql.DB, ms []sqlutil.Migration, logger *slog.Logger) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)

	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return sqlutil.Migrate(ctx, tx, ms, qCreateSchemaVersion, logger)
}
