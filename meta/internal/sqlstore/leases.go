package sqlstore

import (
	"context"
	"fmt"
	"time"
)

// Leases (migration 0009): meta.Leases.

// HoldLease takes or renews the lease name for holder until ttl from now.
func (s *Store) HoldLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("%s: hold lease %q: ttl %v", s.name, name, ttl)
	}
	var held bool
	err := s.write(ctx, func(tx *Tx) error {
		t := s.nowNanos()
		res, err := tx.Exec(ctx, s.q.HoldLease, name, holder, t+ttl.Nanoseconds(), t)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		held = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("%s: hold lease %q: %w", s.name, name, err)
	}
	return held, nil
}

// ReleaseLease gives up holder's lease on name.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	err := s.write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, s.q.ReleaseLease, name, holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: release lease %q: %w", s.name, name, err)
	}
	return nil
}
