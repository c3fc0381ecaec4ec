package sqlstore

import "github.com/berth-dev/berth/meta/internal/sqlutil"

// What both SQL backends share (meta/internal/sqlutil), by the short names
// this package's code uses.
var (
	nullTime      = sqlutil.NullTime
	nanos         = sqlutil.Nanos
	fromNanos     = sqlutil.FromNanos
	fromNullNanos = sqlutil.FromNullNanos
	encodeMap     = sqlutil.EncodeMap
	decodeMap     = sqlutil.DecodeMap
	limit         = sqlutil.Limit
	rowsAffected  = sqlutil.RowsAffected
	sortedTags    = sqlutil.SortedTags
)
