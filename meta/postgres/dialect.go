package postgres

import (
	"fmt"
	"strings"
)

// PostgreSQL's side of sqlstore.Dialect.

// labelArg: the key itself, for ->> and ?.
func labelArg(key string) string { return key }

// mapCond: the column's JSONB object has the key, and its value is one of
// the filter's unless exists.
func mapCond(b *strings.Builder, column string, keyArg int, exists bool, in func(expr string)) {
	if exists {
		fmt.Fprintf(b, "\n  AND COALESCE(%s ? $%d, false)", column, keyArg)
		return
	}
	b.WriteString("\n ")
	in(fmt.Sprintf("(%s ->> $%d)", column, keyArg))
}
