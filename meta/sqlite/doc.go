// Package sqlite is the embedded meta.Store: one SQLite database file, opened
// with the pure-Go modernc.org/sqlite driver, so builds need no cgo.
//
// The schema lives in numbered migrations under migrations/, embedded in the
// binary and applied by Open. All SQL is in queries.go.
//
// SQLite allows one writer at a time. The store keeps two pools on the same
// file: a write pool of exactly one connection, whose transactions begin
// IMMEDIATE, so concurrent writers in this process queue in database/sql
// instead of failing with SQLITE_BUSY; and a read pool of several
// query-only connections, which in WAL mode read a consistent snapshot
// without waiting for the writer. A busy timeout covers other processes
// (such as `berth gc`) writing the same file.
//
// The package owns the database file and nothing else; it knows nothing of
// blob bytes or HTTP.
package sqlite
