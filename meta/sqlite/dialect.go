package sqlite

import (
	"fmt"
	"strings"
)

// SQLite's side of sqlstore.Dialect.

// labelArg is the JSON path of the label or annotation key in its column.
func labelArg(key string) string {
	// JSON path member names in double quotes; a quote or backslash in the
	// key cannot be expressed: the keys the store passes here are its own
	// constants, or checked by validLabelKey (deltas).
	return `$."` + key + `"`
}

// mapCond: the column's JSON object has the key, and its value is one of
// the filter's unless exists.
func mapCond(b *strings.Builder, column string, keyArg int, exists bool, in func(expr string)) {
	fmt.Fprintf(b, "\n  AND EXISTS (SELECT 1 FROM json_each(%s) j WHERE j.key = $%d", column, keyArg)
	if !exists {
		in("j.value")
	}
	b.WriteString(")")
}
