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
	return sqlutil.Migrate(ctx, tx, ms, qCreateSchemaVersion, logger)
}
