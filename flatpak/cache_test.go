package flatpak

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func answer(gen int64, size int) *indexAnswer {
	return &indexAnswer{gen: gen, etag: "x", gz: make([]byte, size)}
}

func TestIndexCacheBudget(t *testing.T) {
	// Each entry costs its answer, its key (one byte here) and
	// entryOverhead: the budget holds two of 40 bytes, not three.
	cost := int64(40 + 1 + entryOverhead)
	budget := 2*cost + 10
	c := newIndexCache(budget, 4)
	ctx := context.Background()
	builds := 0
	get := func(key string, gen int64, size int) *indexAnswer {
		t.Helper()
		a, err := c.get(ctx, key, gen, func(context.Context) (*indexAnswer, error) {
			builds++
			return answer(gen, size), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	get("a", 1, 40)
	get("b", 1, 40)
	get("a", 1, 40) // hit; a is now the most recent
	if builds != 2 {
		t.Fatalf("%d builds, want 2", builds)
	}
	get("c", 1, 40) // evicts b, the least recently used
	if n, size := c.stats(); n != 2 || size != 2*cost {
		t.Errorf("stats = %d entries, %d bytes; want 2, %d", n, size, 2*cost)
	}
	get("a", 1, 40)
	if builds != 3 {
		t.Errorf("a was evicted: %d builds", builds)
	}
	get("b", 1, 40)
	if builds != 4 {
		t.Errorf("b was not evicted: %d builds", builds)
	}
	// A newer generation replaces the entry; an older one is not cached
	// over it.
	if a := get("a", 2, 10); a.gen != 2 || builds != 5 {
		t.Errorf("gen 2: got gen %d after %d builds", a.gen, builds)
	}
	if a := get("a", 1, 10); a.gen != 2 || builds != 5 {
		t.Errorf("asking for gen 1 after gen 2 is cached: got gen %d after %d builds", a.gen, builds)
	}
	// An answer larger than the budget is served, not cached.
	get("huge", 1, int(budget))
	get("huge", 1, int(budget))
	if builds != 7 {
		t.Errorf("oversized answer cached: %d builds", builds)
	}
	if _, size := c.stats(); size > budget {
		t.Errorf("cache holds %d bytes, budget %d", size, budget)
	}
}

func TestIndexCacheSingleFlight(t *testing.T) {
	c := newIndexCache(1<<20, 4)
	var builds atomic.Int64
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			a, err := c.get(context.Background(), "k", 3, func(context.Context) (*indexAnswer, error) {
				builds.Add(1)
				<-release
				return answer(3, 1), nil
			})
			if err != nil || a.gen != 3 {
				t.Errorf("get = %v, %v", a, err)
			}
		})
	}
	for builds.Load() == 0 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Errorf("%d builds for 10 concurrent misses, want 1", n)
	}

	// A failed build is not cached: the next caller builds again.
	boom := errors.New("boom")
	if _, err := c.get(context.Background(), "f", 1, func(context.Context) (*indexAnswer, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("err = %v", err)
	}
	if a, err := c.get(context.Background(), "f", 1, func(context.Context) (*indexAnswer, error) { return answer(1, 1), nil }); err != nil || a == nil {
		t.Errorf("after a failed build: %v, %v", a, err)
	}
}

// TestIndexCacheBuildOutlivesCaller: the build runs under a context no
// caller's cancellation reaches, so the first caller going away neither
// fails the build nor the callers waiting for it.
func TestIndexCacheBuildOutlivesCaller(t *testing.T) {
	c := newIndexCache(1<<20, 4)
	var builds atomic.Int64
	started, release := make(chan struct{}), make(chan struct{})
	build := func(ctx context.Context) (*indexAnswer, error) {
		builds.Add(1)
		close(started)
		<-release
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return answer(5, 1), nil
	}
	first, cancel := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := c.get(first, "k", 5, build)
		firstErr <- err
	}()
	<-started
	second := make(chan *indexAnswer, 1)
	go func() {
		a, err := c.get(context.Background(), "k", 5, build)
		if err != nil {
			t.Errorf("second caller: %v", err)
		}
		second <- a
	}()
	waitFor(t, func() bool { return c.waiters("k", 5) == 2 })
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Errorf("first caller: %v, want context.Canceled", err)
	}
	close(release)
	if a := <-second; a == nil || a.gen != 5 {
		t.Errorf("second caller got %v", a)
	}
	if n := builds.Load(); n != 1 {
		t.Errorf("%d builds, want 1", n)
	}
}

// TestIndexCacheFlightPerGeneration: a caller that needs a newer
// generation does not wait for (nor share) a flight of an older one.
func TestIndexCacheFlightPerGeneration(t *testing.T) {
	c := newIndexCache(1<<20, 4)
	started, release := make(chan struct{}), make(chan struct{})
	old := make(chan *indexAnswer, 1)
	go func() {
		a, _ := c.get(context.Background(), "k", 1, func(context.Context) (*indexAnswer, error) {
			close(started)
			<-release
			return answer(1, 1), nil
		})
		old <- a
	}()
	<-started
	a, err := c.get(context.Background(), "k", 2, func(context.Context) (*indexAnswer, error) { return answer(2, 1), nil })
	if err != nil || a.gen != 2 {
		t.Errorf("gen 2 while gen 1 builds: %v, %v", a, err)
	}
	close(release)
	if a := <-old; a == nil || a.gen != 1 {
		t.Errorf("gen 1 caller got %v", a)
	}
	// The older answer does not replace the newer one in the cache.
	if a, _ := c.get(context.Background(), "k", 2, nil); a.gen != 2 {
		t.Errorf("cached gen %d, want 2", a.gen)
	}
}

// TestIndexCacheBoundsBuilds: at most maxBuilds answers are built at a
// time, however many distinct queries miss at once.
func TestIndexCacheBoundsBuilds(t *testing.T) {
	const maxBuilds, queries = 2, 8
	c := newIndexCache(1<<20, maxBuilds)
	var running, peak, builds atomic.Int64
	started := make(chan struct{}, queries)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range queries {
		wg.Go(func() {
			_, err := c.get(context.Background(), fmt.Sprint("q", i), 1, func(context.Context) (*indexAnswer, error) {
				n := running.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				builds.Add(1)
				started <- struct{}{}
				<-release
				running.Add(-1)
				return answer(1, 1), nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	// Let the builds through one at a time, each after one has started.
	for range queries {
		<-started
		release <- struct{}{}
	}
	wg.Wait()
	if p := peak.Load(); p > maxBuilds {
		t.Errorf("%d builds ran at once, want at most %d", p, maxBuilds)
	}
	if n := builds.Load(); n != queries {
		t.Errorf("%d builds, want %d", n, queries)
	}
}

// TestIndexCacheAbandonedFlight: a flight whose callers all left before a
// build slot was free does not build.
func TestIndexCacheAbandonedFlight(t *testing.T) {
	c := newIndexCache(1<<20, 1)
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.get(context.Background(), "busy", 1, func(context.Context) (*indexAnswer, error) {
			close(started)
			<-release
			return answer(1, 1), nil
		})
	}()
	<-started
	var builds atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.get(ctx, "gone", 1, func(context.Context) (*indexAnswer, error) {
			builds.Add(1)
			return answer(1, 1), nil
		})
		errc <- err
	}()
	waitFor(t, func() bool { return c.waiters("gone", 1) == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
	close(release)
	<-done
	waitFor(t, func() bool { return c.flights() == 0 })
	if n := builds.Load(); n != 0 {
		t.Errorf("an abandoned flight built %d times", n)
	}
}

// waitFor yields until cond holds (no clock: the test's own deadline
// bounds it).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		runtime.Gosched()
	}
}

func (c *indexCache) waiters(key string, gen int64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.inflight[flightKey{key, gen}]; f != nil {
		return f.waiters
	}
	return 0
}

func (c *indexCache) flights() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.inflight)
}

func TestParseIndexQueryNormalizes(t *testing.T) {
	a, err := parseIndexQuery("tag=b&tag=a&label%3Ax%3Aexists=1&os=linux&tag=a&ignored=1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseIndexQuery("os=linux&label:x:exists=1&tag=a&tag=b")
	if err != nil {
		t.Fatal(err)
	}
	if a.key != b.key || a.key != "label%3Ax%3Aexists=1&os=linux&tag=a&tag=b" {
		t.Errorf("keys %q and %q", a.key, b.key)
	}
}

// TestIndexCacheFloodOfKeys: a flood of distinct queries with tiny answers
// and long keys (what a hostile client sends to miss the cache) stays
// within the budget: keys and bookkeeping count, and the number of
// entries is capped (audit: each distinct filter misses the cache).
func TestIndexCacheFloodOfKeys(t *testing.T) {
	const budget = 1 << 20
	c := newIndexCache(budget, 4)
	ctx := context.Background()
	longKey := strings.Repeat("k", 8<<10)
	for i := range 3 * maxCacheEntries {
		key := fmt.Sprintf("%s%d", longKey, i)
		if _, err := c.get(ctx, key, 1, func(context.Context) (*indexAnswer, error) { return answer(1, 30), nil }); err != nil {
			t.Fatal(err)
		}
		if n, size := c.stats(); size > budget || n > maxCacheEntries {
			t.Fatalf("after %d keys: %d entries, %d bytes; budget %d bytes, %d entries", i+1, n, size, budget, maxCacheEntries)
		}
	}
	// Short keys: the entry cap binds before the byte budget.
	c = newIndexCache(1<<30, 4)
	for i := range maxCacheEntries + 100 {
		if _, err := c.get(ctx, fmt.Sprint(i), 1, func(context.Context) (*indexAnswer, error) { return answer(1, 1), nil }); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := c.stats(); n != maxCacheEntries {
		t.Errorf("%d entries, want the cap %d", n, maxCacheEntries)
	}
}

// TestIndexCachePendingShared: while generations move, callers of newer
// generations share the one build of their key that waits for a slot
// (it reads a snapshot after they looked), instead of queueing one build
// per generation.
func TestIndexCachePendingShared(t *testing.T) {
	c := newIndexCache(1<<20, 1) // one build at a time
	var builds atomic.Int64
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	// The store's generation; a build answers from the snapshot it reads
	// when it begins, as IndexImages does.
	var current atomic.Int64
	current.Store(1)
	build := func(int64) func(context.Context) (*indexAnswer, error) {
		return func(context.Context) (*indexAnswer, error) {
			builds.Add(1)
			gen := current.Load()
			started <- struct{}{}
			<-release
			return answer(gen, 10), nil
		}
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := c.get(ctx, "k", 1, build(1)); err != nil {
			t.Error(err)
		}
	})
	<-started // generation 1 builds and holds the only slot
	var got [6]int64
	for i := range got {
		gen := int64(i + 2)
		current.Store(gen) // a change, then a caller that sees it
		wg.Go(func() {
			a, err := c.get(ctx, "k", gen, build(gen))
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = a.gen
		})
	}
	// Wait until all six wait on flights (the ones after generation 1's),
	// then let the builds run.
	for {
		c.mu.Lock()
		n := 0
		for fk, f := range c.inflight {
			if fk.gen > 1 {
				n += f.waiters
			}
		}
		c.mu.Unlock()
		if n >= len(got) {
			break
		}
		runtime.Gosched()
	}
	current.Store(int64(len(got) + 1))
	close(release)
	wg.Wait()
	if n := builds.Load(); n != 2 {
		t.Errorf("%d builds for generations 1 to 7 of one key, want 2 (the running one and one shared by the rest)", n)
	}
	for i, g := range got {
		if g < int64(i+2) {
			t.Errorf("a caller of generation %d got an answer of generation %d", i+2, g)
		}
	}
}

// TestIndexCacheSlims: an answer that fits the budget only without what a
// refresh needs is cached without it (and can no longer be refreshed),
// rather than not at all; the caller's answer is not changed.
func TestIndexCacheSlims(t *testing.T) {
	c := newIndexCache(int64(100+1+entryOverhead), 1)
	a := answer(1, 100)
	a.seq, a.repos, a.bounds, a.held = 7, map[string][]byte{"r": make([]byte, 5000)}, map[string]int64{"r": 5000}, 5000
	got, err := c.get(context.Background(), "k", 1, func(context.Context) (*indexAnswer, error) { return a, nil })
	if err != nil || got != a {
		t.Fatalf("get: %v, %v", got, err)
	}
	cur := c.current("k")
	if cur == nil {
		t.Fatal("not cached")
	}
	if cur.repos != nil || cur.bounds != nil || cur.seq != -1 || cur.held != 0 || len(cur.gz) != 100 {
		t.Fatalf("cached %+v, want the answer alone", cur)
	}
	if a.repos == nil || a.seq != 7 {
		t.Fatal("the caller's answer was changed")
	}
}
