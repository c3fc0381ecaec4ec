package sqlite

import (
	"errors"
	"fmt"
	"syscall"

	"modernc.org/sqlite"
)

// sqliteFull is SQLITE_FULL, the primary result code of a write that found
// the disk (or the database's size limit) full.
const sqliteFull = 13

// diskErr makes an SQLITE_FULL error match syscall.ENOSPC, so that callers
// (the registry answers 507) treat a full disk alike whichever store hit
// it. SQLite rolls the statement or transaction back, so the database stays
// usable once space is freed. Other errors are returned unchanged.
func diskErr(err error) error {
	var se *sqlite.Error
	if err != nil && errors.As(err, &se) && se.Code()&0xff == sqliteFull {
		return fmt.Errorf("%w (%w)", err, syscall.ENOSPC)
	}
	return err
}
