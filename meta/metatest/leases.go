package metatest

import (
	"testing"
	"time"

	"github.com/berth-dev/berth/meta"
)

// LeaseStore is the part of a backend that work done by one replica at a
// time uses (package notify's endpoint workers).
//
//   - HoldLease takes a lease that is free (never taken, released, or
//     expired) and renews one the holder has; it reports false, without
//     an error, while another holder's lease is live.
//   - ReleaseLease frees the holder's lease at once; releasing a lease
//     another holds, or none, changes nothing.
type LeaseStore interface {
	meta.Leases
}

// RunLeases runs the LeaseStore contract.
func RunLeases(t *testing.T, newStore func(t *testing.T) LeaseStore) {
	t.Helper()
	t.Run("TakeRenewRelease", func(t *testing.T) { testLeases(t, newStore(t)) })
	t.Run("Expiry", func(t *testing.T) { testLeaseExpiry(t, newStore(t)) })
}

func hold(t *testing.T, s LeaseStore, name, holder string, ttl time.Duration) bool {
	t.Helper()
	ok, err := s.HoldLease(t.Context(), name, holder, ttl)
	if err != nil {
		t.Fatalf("HoldLease(%s, %s): %v", name, holder, err)
	}
	return ok
}

func testLeases(t *testing.T, s LeaseStore) {
	ctx := t.Context()
	if !hold(t, s, "webhook:a", "r1", time.Minute) {
		t.Fatal("a free lease was not taken")
	}
	if !hold(t, s, "webhook:a", "r1", time.Minute) {
		t.Fatal("the holder could not renew its lease")
	}
	if hold(t, s, "webhook:a", "r2", time.Minute) {
		t.Fatal("a second holder took a live lease")
	}
	if !hold(t, s, "webhook:b", "r2", time.Minute) {
		t.Fatal("leases of other names are independent, but webhook:b was refused")
	}
	// Releasing what another holds changes nothing.
	if err := s.ReleaseLease(ctx, "webhook:a", "r2"); err != nil {
		t.Fatal(err)
	}
	if hold(t, s, "webhook:a", "r2", time.Minute) {
		t.Fatal("a release by a non-holder freed the lease")
	}
	if err := s.ReleaseLease(ctx, "webhook:a", "r1"); err != nil {
		t.Fatal(err)
	}
	if !hold(t, s, "webhook:a", "r2", time.Minute) {
		t.Fatal("a released lease was not taken by the next holder")
	}
	if hold(t, s, "webhook:a", "r1", time.Minute) {
		t.Fatal("the old holder took back a lease it had released")
	}
	if err := s.ReleaseLease(ctx, "never-taken", "r1"); err != nil {
		t.Fatalf("releasing a lease never taken: %v", err)
	}
	if _, err := s.HoldLease(ctx, "webhook:c", "r1", 0); err == nil {
		t.Error("HoldLease with a zero ttl: no error")
	}
}

func testLeaseExpiry(t *testing.T, s LeaseStore) {
	if !hold(t, s, "webhook:a", "r1", 50*time.Millisecond) {
		t.Fatal("a free lease was not taken")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !hold(t, s, "webhook:a", "r2", time.Minute) {
		if time.Now().After(deadline) {
			t.Fatal("a lease of 50ms was still held by its holder after 10s without renewal")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if hold(t, s, "webhook:a", "r1", time.Minute) {
		t.Fatal("the expired holder took the lease back from the new one")
	}
}
