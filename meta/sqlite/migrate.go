package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"log/slog"

	"github.com/berth-dev/berth/meta/internal/sqlutil"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// A migration is one numbered file, NNNN_description.sql, holding the
// statements that take the schema from version NNNN-1 to NNNN.

// migrate applies the migrations db has not seen, in order, in one
// transaction recorded in schema_version: the schema is either at the old
// version or the new one. A database newer than ms is an error.
func migrate(ctx context.Context, db *sql.DB, ms []sqlutil.Migration, logger *slog.Logger) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, qCreateSchemaVersion); err != nil {
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
		if _, err := tx.ExecContext(ctx, qInsertSchemaVersion, m.Version, now()); err != nil {
			return fmt.Errorf("migrate: %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	logger.InfoContext(ctx, "meta schema migrated", "from", current, "to", latest)
	return nil
}
