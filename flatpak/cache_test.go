package flatpak

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func answer(gen int64, size int) *indexAnswer {
	return &indexAnswer{gen: gen, etag: "x", gz: make([]byte, size)}
}

func TestIndexCacheBudget(t *testing.T) {
	c := newIndexCache(100)
	ctx := context.Background()
	builds := 0
	get := func(key string, gen int64, size int) *indexAnswer {
		t.Helper()
		a, err := c.get(ctx, key, gen, func() (*indexAnswer, error) {
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
	if n, size := c.stats(); n != 2 || size != 80 {
		t.Errorf("stats = %d entries, %d bytes; want 2, 80", n, size)
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
	get("huge", 1, 101)
	get("huge", 1, 101)
	if builds != 7 {
		t.Errorf("oversized answer cached: %d builds", builds)
	}
	if _, size := c.stats(); size > 100 {
		t.Errorf("cache holds %d bytes, budget 100", size)
	}
}

func TestIndexCacheSingleFlight(t *testing.T) {
	c := newIndexCache(1 << 20)
	var builds atomic.Int64
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			a, err := c.get(context.Background(), "k", 3, func() (*indexAnswer, error) {
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

	// A failed build is not cached, and waiters build for themselves.
	boom := errors.New("boom")
	if _, err := c.get(context.Background(), "f", 1, func() (*indexAnswer, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("err = %v", err)
	}
	if a, err := c.get(context.Background(), "f", 1, func() (*indexAnswer, error) { return answer(1, 1), nil }); err != nil || a == nil {
		t.Errorf("after a failed build: %v, %v", a, err)
	}
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
