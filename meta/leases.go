package meta

import (
	"context"
	"time"
)

// Leases name work that one process at a time should do, among the
// replicas sharing a metadata store (a webhook endpoint's deliveries, for
// one): a holder that stops renewing loses its lease when it expires, and
// another takes it over. A lease is an optimisation of who works, never
// what makes the work correct: the work itself stays safe if two holders
// overlap for a moment (an expired holder still finishing a request).
type Leases interface {
	// HoldLease takes the lease name for holder, or renews it if holder
	// has it, until ttl from now, and reports whether holder has it: false
	// (and no error) when another holder's lease has not expired.
	HoldLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives up holder's lease on name (nothing if another
	// holder has it), so another can take it at once.
	ReleaseLease(ctx context.Context, name, holder string) error
}
