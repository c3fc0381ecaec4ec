// Package gctune keeps Go's garbage collector from running more often than
// a small heap needs.
//
// The collector starts a cycle when the heap has grown by GOGC per cent of
// what the last one left live. A registry's live heap is small most of the
// time (a few MiB between pushes), so at berth's 50% a busy read path
// collected every few milliseconds: under manifest GETs, about 70 cycles a
// second, each taking CPU from the requests and slowing those that
// allocate during it (docs/performance.md). The tuner sets GOGC again
// after every cycle so that the next cycle's heap goal (the heap size it
// aims to finish by; it starts somewhat before) is the floor while the
// live heap is small, and the configured percentage past the live heap
// once that is larger. The peak heap is then max(floor, live × (1 +
// percent/100)): the floor changes nothing while the heap is large, which
// is when memory is short.
package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Percent is the GOGC that puts the next cycle's heap goal at floor,
// given what the last cycle left: live heap, and stack and global roots
// (which the goal counts too). It is never below percent.
func Percent(percent int, floor, live, roots uint64) int {
	scan := live + roots
	if scan == 0 || floor <= live {
		return percent
	}
	floor = min(floor, MaxFloor) // no overflow below
	p := (floor - live) * 100 / scan
	// The runtime never sets a goal below 4 MiB × GOGC/100 (its
	// heapMinimum): over a tiny live heap, a large percentage would put
	// the goal far past the floor.
	p = min(p, floor*100/heapMinimum, 1<<20)
	return max(percent, int(p))
}

// heapMinimum is the runtime's goal floor at GOGC=100.
const heapMinimum = 4 << 20

// MaxFloor is the largest floor the tuner honours (1 TiB).
const MaxFloor = 1 << 40

var samples = []metrics.Sample{
	{Name: "/gc/heap/live:bytes"},
	{Name: "/gc/scan/stack:bytes"},
	{Name: "/gc/scan/globals:bytes"},
}

// Start sets GOGC to percent now and, while floor > 0, again after every
// collection as Percent says. stop ends the tuning (at the next cycle) and
// leaves GOGC at percent.
func Start(percent int, floor uint64) (stop func()) {
	debug.SetGCPercent(percent)
	if floor == 0 {
		return func() {}
	}
	t := &tuner{percent: percent, floor: floor, last: percent}
	t.arm()
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.stopped = true
		debug.SetGCPercent(percent)
	}
}

type tuner struct {
	percent int
	floor   uint64

	mu      sync.Mutex
	last    int // the GOGC set last
	stopped bool
}

// arm registers a cleanup that runs after the next cycle in which a fresh
// object became unreachable: once per collection. Each run arms the next.
// The runtime queues it when the sweeper reaches the object's span, which
// in a server allocating small objects is soon after the cycle; until
// then the cycle's goal comes from the GOGC set for the one before, so a
// sudden rise of the live heap can overshoot the floor for one cycle, by
// at most 1 + GOGC/100 times (5× at the default 16 MiB floor, whose
// GOGC is capped at 400).
func (t *tuner) arm() {
	runtime.AddCleanup(new([16]byte), func(t *tuner) { t.cycle() }, t)
}

func (t *tuner) cycle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	s := make([]metrics.Sample, len(samples))
	copy(s, samples)
	metrics.Read(s)
	var v [3]uint64
	for i := range s {
		if s[i].Value.Kind() == metrics.KindUint64 {
			v[i] = s[i].Value.Uint64()
		}
	}
	if p := Percent(t.percent, t.floor, v[0], v[1]+v[2]); p != t.last {
		debug.SetGCPercent(p)
		t.last = p
	}
	t.arm()
}
