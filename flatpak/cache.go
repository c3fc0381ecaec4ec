package flatpak

import (
	"container/list"
	"context"
	"sync"
)

// indexAnswer is one encoded index answer.
type indexAnswer struct {
	gen  int64
	etag string
	gz   []byte // the JSON, gzipped
	size int64  // length of the JSON
}

// indexCache keeps encoded index answers, at most one per key (the
// client's base URL and the normalized query), valid for one generation,
// within a memory budget (least recently used first out). Concurrent
// misses for the same key and generation build the answer once.
type indexCache struct {
	max int64

	mu       sync.Mutex
	size     int64
	lru      *list.List // of *cacheEntry, most recent first
	entries  map[string]*list.Element
	inflight map[string]*flight
}

type cacheEntry struct {
	key string
	ans *indexAnswer
}

type flight struct {
	done chan struct{}
	ans  *indexAnswer
	err  error
}

func newIndexCache(maxBytes int64) *indexCache {
	return &indexCache{max: maxBytes, lru: list.New(), entries: map[string]*list.Element{}, inflight: map[string]*flight{}}
}

// get returns the answer cached for key at generation gen, or builds it
// with build (once, however many callers ask at the same time) and caches
// it if it fits. An answer built for a newer generation than gen is
// returned as it is: it is at least as fresh as asked.
func (c *indexCache) get(ctx context.Context, key string, gen int64, build func() (*indexAnswer, error)) (*indexAnswer, error) {
	c.mu.Lock()
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*cacheEntry)
		if e.ans.gen >= gen {
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			return e.ans, nil
		}
	}
	fkey := key
	if f, ok := c.inflight[fkey]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.err == nil && f.ans.gen >= gen {
			return f.ans, nil
		}
		// The flight failed (perhaps its caller went away) or was for
		// an older generation: build our own, uncached.
		return build()
	}
	f := &flight{done: make(chan struct{})}
	c.inflight[fkey] = f
	c.mu.Unlock()

	f.ans, f.err = build()
	c.mu.Lock()
	delete(c.inflight, fkey)
	if f.err == nil {
		c.put(key, f.ans)
	}
	c.mu.Unlock()
	close(f.done)
	return f.ans, f.err
}

// put stores ans under key, replacing an older answer, and evicts the
// least recently used answers beyond the budget. c.mu is held.
func (c *indexCache) put(key string, ans *indexAnswer) {
	if el, ok := c.entries[key]; ok {
		old := el.Value.(*cacheEntry)
		if old.ans.gen > ans.gen {
			return
		}
		c.size -= int64(len(old.ans.gz))
		c.lru.Remove(el)
		delete(c.entries, key)
	}
	n := int64(len(ans.gz))
	if n > c.max {
		return
	}
	c.entries[key] = c.lru.PushFront(&cacheEntry{key: key, ans: ans})
	c.size += n
	for c.size > c.max {
		el := c.lru.Back()
		e := el.Value.(*cacheEntry)
		c.size -= int64(len(e.ans.gz))
		c.lru.Remove(el)
		delete(c.entries, e.key)
	}
}

// stats returns the number of cached answers and their size (for tests).
func (c *indexCache) stats() (n int, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.size
}
