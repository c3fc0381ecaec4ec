package postgres

import (
	"context"
	"fmt"
	"time"
)

// Leases (migration 0009): meta.Leases.

const (
	// Take a free or expired lease, or renew one's own; no row changes
	// when another holder's lease is live.
	qHoldLease = `INSERT INTO leases (name, holder, expires) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
WHERE leases.holder = excluded.holder OR leases.expires <= $4`
	qReleaseLease = `DELETE FROM leases WHERE name = $1 AND holder = $2`
)

// HoldLease takes or renews the lease name for holder until ttl from now.
func (s *Store) HoldLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("postgres: hold lease %q: ttl %v", name, ttl)
	}
	var held bool
	err := s.write(ctx, func(tx txn) error {
		t := now()
		res, err := tx.exec(ctx, qHoldLease, name, holder, t+ttl.Nanoseconds(), t)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		held = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("postgres: hold lease %q: %w", name, err)
	}
	return held, nil
}

// ReleaseLease gives up holder's lease on name.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	err := s.write(ctx, func(tx txn) error {
		_, err := tx.exec(ctx, qReleaseLease, name, holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: release lease %q: %w", name, err)
	}
	return nil
}
