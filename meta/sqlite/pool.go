package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// pool is one *sql.DB with the statements it runs prepared once, at Open.
// Preparing is a large share of a small query's cost, and preparing later,
// inside a transaction on the one-connection write pool, would wait for the
// connection the transaction holds.
type pool struct {
	db    *sql.DB
	stmts map[string]*sql.Stmt
}

func newPool(ctx context.Context, db *sql.DB, queries []string) (*pool, error) {
	p := &pool{db: db, stmts: make(map[string]*sql.Stmt, len(queries))}
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
		p.stmts[q] = st
	}
	return p, nil
}

// stmt returns the prepared statement for q, which must be one of the
// queries the pool was made with.
func (p *pool) stmt(q string) *sql.Stmt {
	st, ok := p.stmts[q]
	if !ok {
		panic("sqlite: query not prepared on this pool: " + q)
	}
	return st
}

func (p *pool) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	res, err := p.stmt(q).ExecContext(ctx, args...)
	return res, diskErr(err)
}

func (p *pool) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return p.stmt(q).QueryRowContext(ctx, args...)
}

func (p *pool) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return p.stmt(q).QueryContext(ctx, args...)
}

func (p *pool) begin(ctx context.Context, opts *sql.TxOptions) (txn, error) {
	tx, err := p.db.BeginTx(ctx, opts)
	return txn{tx: tx, p: p, ctx: ctx}, err
}

// close closes the statements and the database; a second call returns nil.
// The statements stay in the map, closed, so that later calls fail with an
// error rather than panic.
func (p *pool) close() error {
	var errs []error
	for _, st := range p.stmts {
		errs = append(errs, st.Close())
	}
	errs = append(errs, p.db.Close())
	return errors.Join(errs...)
}

// txn runs a pool's prepared statements inside a transaction, under the
// context the transaction began with: the ctx its methods take is the
// caller's, and is not used, so that one caller's cancellation cannot
// interrupt a transaction that holds other callers' writes (group.go).
type txn struct {
	tx  *sql.Tx
	p   *pool
	ctx context.Context
}

func (t txn) exec(_ context.Context, q string, args ...any) (sql.Result, error) {
	res, err := t.tx.StmtContext(t.ctx, t.p.stmt(q)).ExecContext(t.ctx, args...)
	return res, diskErr(err)
}

func (t txn) queryRow(_ context.Context, q string, args ...any) *sql.Row {
	return t.tx.StmtContext(t.ctx, t.p.stmt(q)).QueryRowContext(t.ctx, args...)
}

func (t txn) query(_ context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.StmtContext(t.ctx, t.p.stmt(q)).QueryContext(t.ctx, args...)
}
