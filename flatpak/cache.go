package flatpak

import (
	"container/list"
	"context"
	"errors"
	"sync"
)

// indexAnswer is one encoded index answer.
type indexAnswer struct {
	gen int64 // the generation of the snapshot it was built from
	// etag is the strong ETag of the identity (JSON) body, a fingerprint
	// of it; the gzipped body's is etagGzip.
	etag string
	gz   []byte // the JSON, gzipped
	size int64  // length of the JSON
	// truncated: the answer stopped at Options.MaxIndexBytes.
	truncated bool

	// What a refresh builds the next answer from (refreshIndex): the
	// events outbox's sequence the answer reflects at least (-1: none, it
	// cannot be refreshed), each repository's encoded result, and the
	// compressed groups by key (pointing into gz).
	seq    int64
	repos  map[string][]byte
	bounds map[string]int64 // each repository's share of the cap (indexParts.bounds)
	groups map[string]*gzGroup
	held   int64 // bytes of repos and of the groups' keys
}

// slim drops what a refresh needs, leaving the answer alone: for answers
// that are not to be refreshed (cut ones) or that would not fit the cache
// with it.
func (a *indexAnswer) slim() {
	a.seq, a.repos, a.bounds, a.groups, a.held = -1, nil, nil, nil, 0
}

// etagGzip is the ETag of the gzipped body: another representation, so
// another tag (RFC 9110 §8.8.3.3).
func (a *indexAnswer) etagGzip() string { return a.etag[:len(a.etag)-1] + `-gz"` }

// indexCache keeps encoded index answers, at most one per key (the view
// and the normalized query), valid while the store's generation has not
// passed theirs, within a memory budget (least recently used first out)
// that counts each entry's key and bookkeeping as well as its answer, and
// at most maxCacheEntries of them: a flood of distinct queries, each with
// a tiny answer and a long key, cannot grow the cache past its budget.
//
// Concurrent misses for the same key and generation build the answer once,
// in a flight of its own that no caller's going away cancels; at most
// maxBuilds flights build at a time (the others wait their turn), and a
// flight whose callers have all gone before its turn does not build.
type indexCache struct {
	max int64
	sem chan struct{} // one slot per build running

	mu       sync.Mutex
	size     int64
	lru      *list.List // of *cacheEntry, most recent first
	entries  map[string]*list.Element
	inflight map[flightKey]*flight
	// pending is, by key, the flight that waits for a build slot: it will
	// read a snapshot after anyone who joins it now looked at the
	// generation, so any caller of that key may share it.
	pending map[string]*flight
}

type cacheEntry struct {
	key string
	ans *indexAnswer
}

// Bookkeeping an entry costs beyond its key and answer (the list element,
// the map slot, the entry and answer structs, the ETag), rounded up.
const (
	entryOverhead   = 512
	groupOverhead   = 160 // a gzGroup and its map slot, its key aside
	maxCacheEntries = 4096
)

// cost is what an entry counts against the budget.
func (e *cacheEntry) cost() int64 {
	return int64(len(e.key)+len(e.ans.gz)) + e.ans.held + int64(len(e.ans.bounds)+len(e.ans.groups))*groupOverhead + entryOverhead
}

type flightKey struct {
	key string
	gen int64
}

type flight struct {
	done    chan struct{}
	waiters int // callers waiting for it; under indexCache.mu
	ans     *indexAnswer
	err     error
}

// errAbandoned ends a flight whose callers all went away before it built.
var errAbandoned = errors.New("index build abandoned: no caller waits for it")

func newIndexCache(maxBytes int64, maxBuilds int) *indexCache {
	return &indexCache{
		max: maxBytes, sem: make(chan struct{}, max(maxBuilds, 1)),
		lru: list.New(), entries: map[string]*list.Element{}, inflight: map[flightKey]*flight{},
		pending: map[string]*flight{},
	}
}

// get returns the answer cached for key if it is of generation gen or
// newer, or builds it with build: once for each (key, gen) however many
// callers ask at the same time, and callers of any generation share a
// build of their key that has not begun (while generations move, at most
// one build per key waits for a slot), under a context that keeps ctx's values
// but not its cancellation. It caches the answer if it fits. A caller
// whose ctx ends stops waiting (ctx.Err()); the build goes on for the
// others.
func (c *indexCache) get(ctx context.Context, key string, gen int64, build func(context.Context) (*indexAnswer, error)) (*indexAnswer, error) {
	c.mu.Lock()
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*cacheEntry)
		if e.ans.gen >= gen {
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			return e.ans, nil
		}
	}
	fk := flightKey{key, gen}
	f, ok := c.inflight[fk]
	if !ok {
		f, ok = c.pending[key]
	}
	if !ok {
		f = &flight{done: make(chan struct{})}
		c.inflight[fk] = f
		c.pending[key] = f
		go c.fly(context.WithoutCancel(ctx), fk, f, build)
	}
	f.waiters++
	c.mu.Unlock()

	select {
	case <-f.done:
		return f.ans, f.err
	case <-ctx.Done():
		c.mu.Lock()
		f.waiters--
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// fly builds the answer of one flight when a build slot is free, unless
// nobody waits for it any more, and caches it.
func (c *indexCache) fly(ctx context.Context, fk flightKey, f *flight, build func(context.Context) (*indexAnswer, error)) {
	c.sem <- struct{}{}
	defer func() { <-c.sem }()
	c.mu.Lock()
	if c.pending[fk.key] == f { // it begins: later callers need a newer snapshot
		delete(c.pending, fk.key)
	}
	if f.waiters == 0 {
		delete(c.inflight, fk)
		c.mu.Unlock()
		f.err = errAbandoned
		close(f.done)
		return
	}
	c.mu.Unlock()

	f.ans, f.err = build(ctx)
	c.mu.Lock()
	delete(c.inflight, fk)
	if f.err == nil {
		c.put(fk.key, f.ans)
	}
	c.mu.Unlock()
	close(f.done)
}

// put stores ans under key, replacing an older answer, and evicts the
// least recently used answers beyond the budget. c.mu is held.
func (c *indexCache) put(key string, ans *indexAnswer) {
	if el, ok := c.entries[key]; ok {
		old := el.Value.(*cacheEntry)
		if old.ans.gen > ans.gen {
			return
		}
		c.size -= old.cost()
		c.lru.Remove(el)
		delete(c.entries, key)
	}
	e := &cacheEntry{key: key, ans: ans}
	n := e.cost()
	if n > c.max && ans.repos != nil {
		// Too large to keep what a refresh needs: keep the answer alone
		// (a copy: callers may hold ans).
		slim := *ans
		slim.slim()
		e.ans = &slim
		n = e.cost()
	}
	if n > c.max {
		return
	}
	c.entries[key] = c.lru.PushFront(e)
	c.size += n
	for c.size > c.max || len(c.entries) > maxCacheEntries {
		el := c.lru.Back()
		e := el.Value.(*cacheEntry)
		c.size -= e.cost()
		c.lru.Remove(el)
		delete(c.entries, e.key)
	}
}

// current returns the answer cached for key, of any generation (nil:
// none), for a build to start from.
func (c *indexCache) current(key string) *indexAnswer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		return el.Value.(*cacheEntry).ans
	}
	return nil
}

// stats returns the number of cached answers and their size (for tests).
func (c *indexCache) stats() (n int, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.size
}
