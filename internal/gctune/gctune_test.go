package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name               string
		floor, live, roots uint64
		want               int
	}{
		{"small heap: the next cycle at the floor", 16 * mib, 3 * mib, mib, 325},
		{"tiny heap: no more than the runtime's minimum allows", 16 * mib, 2 * mib, 0, 400},
		{"roots count toward the goal", 16 * mib, 2 * mib, 2 * mib, 350},
		{"large heap: the percentage", 16 * mib, 40 * mib, mib, 50},
		{"the floor just above 1.5 live", 16 * mib, 10 * mib, 0, 60},
		{"live at the floor", 16 * mib, 16 * mib, 0, 50},
		{"nothing measured yet", 16 * mib, 0, 0, 50},
		{"huge floor: capped", 1 << 40, 1, 0, 1 << 20},
	} {
		if got := Percent(50, c.floor, c.live, c.roots); got != c.want {
			t.Errorf("%s: Percent(50, %d, %d, %d) = %d, want %d", c.name, c.floor, c.live, c.roots, got, c.want)
		}
	}
}

var sink []byte

// churn allocates n bytes of garbage in 64 KiB pieces and returns how many
// collections ran meanwhile.
func churn(n int) uint32 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n >> 16 {
		sink = make([]byte, 64<<10)
	}
	runtime.ReadMemStats(&after)
	return after.NumGC - before.NumGC
}

// TestStart: with a floor of 64 MiB over a heap of a few MiB, allocating
// 512 MiB takes a handful of collections instead of the hundreds the
// percentage alone makes; stop puts GOGC back to the percentage.
func TestStart(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	const alloc = 512 << 20
	stop := Start(50, 0)
	runtime.GC()
	plain := churn(alloc)
	stop()

	stop = Start(50, 64<<20)
	runtime.GC() // the tuner sets GOGC after this cycle
	tuned := churn(alloc)
	stop()
	t.Logf("collections while allocating 512 MiB: %d at GOGC=50, %d with a 64 MiB floor", plain, tuned)
	if lo, hi := uint32(alloc/(128<<20)), uint32(alloc/(48<<20)+2); tuned < lo || tuned > hi {
		t.Errorf("%d collections with a 64 MiB floor, want %d to %d (a cycle about every 64 MiB)", tuned, lo, hi)
	}
	if plain < 4*tuned {
		t.Errorf("%d collections at GOGC=50 against %d with the floor: the floor did not spare any", plain, tuned)
	}
	if got := debug.SetGCPercent(100); got != 50 {
		t.Errorf("GOGC after stop = %d, want 50", got)
	}
}
