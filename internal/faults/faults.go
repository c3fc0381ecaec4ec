// Package faults wraps Berth's blob and metadata stores to inject the
// failures real storage has and tests can't otherwise cause on demand: the
// Nth call of an operation failing, a disk filling up at byte N of an
// upload, a torn write (half the bytes land, then an error), and added
// latency. It copies pebble's vfs/errorfs and zot's inject, as
// ../shared/docs/security-lessons.md §2 recommends. It is for tests only.
//
// Operations are named "<store>.<Method>": "blob.Commit", "blob.Write",
// "blob.State", "meta.LinkBlob", "meta.PutManifest", "meta.UpdateUpload"
// and so on, one per method of blob.Store, blob.Writer and meta.Store.
package faults

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"
)

// ErrInjected is the default injected failure.
var ErrInjected = errors.New("injected fault")

// Injector decides which calls fail. The zero value injects nothing; it is
// safe for concurrent use.
type Injector struct {
	mu      sync.Mutex
	calls   map[string]int
	rules   []*rule
	latency map[string]time.Duration
	// noSpaceAt, when >= 0, is the total number of upload bytes the "disk"
	// takes before writes fail with ENOSPC.
	noSpaceAt int64
	written   int64
}

type rule struct {
	op    string
	nth   int // 1-based call of op to fail; 0: every call
	err   error
	torn  bool // writes: write half, then fail
	fired int
}

// New returns an injector with nothing injected.
func New() *Injector { return &Injector{noSpaceAt: -1} }

// FailNth makes the nth call (1-based, counted from now on) of op fail
// with err (ErrInjected if nil).
func (in *Injector) FailNth(op string, n int, err error) {
	if err == nil {
		err = ErrInjected
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.add(&rule{op: op, nth: in.calls[op] + n, err: err})
}

// FailAlways makes every call of op fail with err until Reset.
func (in *Injector) FailAlways(op string, err error) {
	if err == nil {
		err = ErrInjected
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.add(&rule{op: op, err: err})
}

// TornWrite makes the nth "blob.Write" from now write half of its bytes and
// then fail with EIO, as a write interrupted by a device error can.
func (in *Injector) TornWrite(n int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.add(&rule{op: "blob.Write", nth: in.calls["blob.Write"] + n, err: syscall.EIO, torn: true})
}

// NoSpaceAfter lets uploads write n more bytes in total (across writers),
// then fails writes with ENOSPC, having written what fits: a disk filling
// up. A negative n removes the limit (space freed).
func (in *Injector) NoSpaceAfter(n int64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.noSpaceAt, in.written = n, 0
}

// Latency delays every call of op by d.
func (in *Injector) Latency(op string, d time.Duration) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.latency == nil {
		in.latency = map[string]time.Duration{}
	}
	in.latency[op] = d
}

// Reset removes every rule, limit and latency; call counts stay.
func (in *Injector) Reset() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules, in.latency, in.noSpaceAt, in.written = nil, nil, -1, 0
}

// Calls returns how many times op has been called.
func (in *Injector) Calls(op string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.calls[op]
}

// Fired returns how many injected failures of op have happened.
func (in *Injector) Fired(op string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, r := range in.rules {
		if r.op == op {
			n += r.fired
		}
	}
	return n
}

func (in *Injector) add(r *rule) { in.rules = append(in.rules, r) }

// check counts a call of op, sleeps its latency, and returns the rule that
// fails it, if any.
func (in *Injector) check(op string) *rule {
	in.mu.Lock()
	if in.calls == nil {
		in.calls = map[string]int{}
	}
	in.calls[op]++
	n := in.calls[op]
	d := in.latency[op]
	var hit *rule
	for _, r := range in.rules {
		if r.op == op && (r.nth == 0 || r.nth == n) {
			r.fired++
			hit = r
			break
		}
	}
	in.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
	return hit
}

// fail returns the injected error for a call of op, or nil.
func (in *Injector) fail(op string) error {
	if r := in.check(op); r != nil {
		return fmt.Errorf("%s: %w", op, r.err)
	}
	return nil
}

// room returns how many of want bytes fit before the disk is full, and
// reserves them. ok is false when they do not all fit.
func (in *Injector) room(want int) (n int, ok bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.noSpaceAt < 0 {
		return want, true
	}
	left := in.noSpaceAt - in.written
	if left >= int64(want) {
		in.written += int64(want)
		return want, true
	}
	left = max(left, 0)
	in.written += left
	return int(left), false
}
