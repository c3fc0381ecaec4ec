package gc

import (
	"testing"
	"time"
)

// TestOnRun: observers see each deleting run's report (what metrics
// count), and not dry runs.
func TestOnRun(t *testing.T) {
	e := newEnv(t)
	old := commitOnly(t, e, "00000000000000000000000000000001", []byte("old orphan"))
	age(t, e, old, 2*time.Hour)
	c := e.collector(Policy{Grace: time.Hour}, 0)
	var seen []Report
	c.OnRun(func(r Report, err error) {
		if err != nil {
			t.Errorf("observed error: %v", err)
		}
		seen = append(seen, r)
	})
	c.OnRun(nil) // ignored
	e.run(c, true)
	if len(seen) != 0 {
		t.Fatalf("a dry run was observed: %+v", seen)
	}
	e.run(c, false)
	e.run(c, false)
	if len(seen) != 2 {
		t.Fatalf("observed %d runs, want 2", len(seen))
	}
	if seen[0].BytesFreed != int64(len("old orphan")) || seen[1].BytesFreed != 0 {
		t.Errorf("freed bytes observed: %d then %d", seen[0].BytesFreed, seen[1].BytesFreed)
	}
}
