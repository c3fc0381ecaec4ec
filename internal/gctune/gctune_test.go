package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
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
		{"floor past MaxFloor: taken as MaxFloor, no overflow", 1 << 63, 1 << 30, 0, 102300},
	} {
		if got := Percent(50, c.floor, c.live, c.roots); got != c.want {
			t.Errorf("%s: Percent(50, %d, %d, %d) = %d, want %d", c.name, c.floor, c.live, c.roots, got, c.want)
		}
	}
}

var sink []byte

// gogc is the runtime's current GOGC.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitGOGC collects until the tuner has set a GOGC that cond accepts. Its
// cleanup runs on another goroutine after a cycle; one that runs late,
// during the next cycle, reads the older cycle's live heap and arms an
// object that survives the cycle in progress, so one collection may not
// be enough (the next one retunes: a late run only skips a cycle).
func waitGOGC(t *testing.T, cond func(int) bool) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond(gogc()) {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC stayed %d over 20 s of collections", gogc())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	return gogc()
}

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
	waitGOGC(t, func(p int) bool { return p > 50 })
	tuned := churn(alloc)
	stop()
	t.Logf("collections while allocating 512 MiB: %d at GOGC=50, %d with a 64 MiB floor", plain, tuned)
	// No lower bound: a cycle's cleanup runs when the sweeper reaches its
	// object, and with nothing but 64 KiB allocations here that can be
	// late, so a cycle may run on the GOGC set for the one before and go
	// well past the floor (TestPercent checks the arithmetic).
	if hi := uint32(alloc/(32<<20) + 2); tuned > hi {
		t.Errorf("%d collections with a 64 MiB floor, want at most %d (a cycle about every 64 MiB)", tuned, hi)
	}
	if plain < 4*tuned {
		t.Errorf("%d collections at GOGC=50 against %d with the floor: the floor did not spare any", plain, tuned)
	}
	if got := debug.SetGCPercent(100); got != 50 {
		t.Errorf("GOGC after stop = %d, want 50", got)
	}
}

var live []byte

// TestRetunes: the tuner sets GOGC after every cycle, not once: with
// 128 MiB live (past the floor) it goes back to the percentage, and once
// that is freed it rises again.
func TestRetunes(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	stop := Start(50, 64<<20)
	defer stop()
	first := waitGOGC(t, func(p int) bool { return p > 50 })
	live = make([]byte, 128<<20)
	for i := range live { // touch it, so that it is not a free zero page
		live[i] = 1
	}
	waitGOGC(t, func(p int) bool { return p == 50 })
	live = nil
	again := waitGOGC(t, func(p int) bool { return p > 50 })
	t.Logf("GOGC %d over a small heap, 50 with 128 MiB live, %d once freed", first, again)
}
