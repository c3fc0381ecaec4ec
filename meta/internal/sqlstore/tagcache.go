package sqlstore

import (
	"container/list"
	"sync"

	"github.com/berth-dev/berth/meta"
)

// tagCache keeps what TagBody read for recently pulled tags, so that a
// pull by tag (every `docker pull name:tag` starts with one) costs no
// database read while the tag stays where it is. Each answer of a manifest
// GET by tag otherwise opened a read transaction and ran the query: about
// half of the server's CPU for such a GET.
//
// It is only correct while this Store makes every change to tags: an
// engine enables it (Engine.TagCache) only when no other process moves or
// deletes tags in the same database (SQLite, whose file berth serve holds;
// `berth gc` in another process deletes only untagged manifests). Every
// write that can change what a tag serves drops the tags it touched after
// it committed (forget), and a read stores its answer only if no write
// finished while it read (gen), so a read that raced a write never stores
// what the write replaced.
type tagCache struct {
	maxBytes, maxEntry int

	mu    sync.Mutex
	gen   uint64 // bumped by every forget
	bytes int
	lru   *list.List // of *tagEntry, most recently used first
	m     map[tagKey]*list.Element
}

type tagKey struct{ repo, tag string }

type tagEntry struct {
	key  tagKey
	body meta.ManifestBody
}

// tagCacheBytes bounds the bytes the cache holds (about 1,000 typical
// image manifests), each entry counted with entryOverhead for its list
// element, entry and map slot; a manifest over tagCacheEntry is not kept.
const (
	tagCacheBytes = 1 << 20
	tagCacheEntry = 64 << 10
	entryOverhead = 256
)

// entrySize is what an entry counts against maxBytes.
func entrySize(k tagKey, b meta.ManifestBody) int {
	return entryOverhead + len(k.repo) + len(k.tag) + len(b.Digest) + len(b.MediaType) + len(b.Content)
}

func newTagCache(maxBytes, maxEntry int) *tagCache {
	return &tagCache{maxBytes: maxBytes, maxEntry: maxEntry, lru: list.New(), m: map[tagKey]*list.Element{}}
}

// get returns the cached body of repo:tag, and the generation a read of
// the database that misses should hand to put.
func (c *tagCache) get(repo, tag string) (meta.ManifestBody, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[tagKey{repo, tag}]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*tagEntry).body, true, c.gen
	}
	return meta.ManifestBody{}, false, c.gen
}

// put stores what a read found for repo:tag, unless a write finished since
// get returned gen (the read may have seen the database before it).
func (c *tagCache) put(repo, tag string, b meta.ManifestBody, gen uint64) {
	k := tagKey{repo, tag}
	size := entrySize(k, b)
	if size > c.maxEntry {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.m[k] != nil {
		return
	}
	c.m[k] = c.lru.PushFront(&tagEntry{key: k, body: b})
	c.bytes += size
	for c.bytes > c.maxBytes {
		c.drop(c.lru.Back())
	}
}

// forget drops repo's tags (all of them when tags is nil; none when it is
// empty) and makes every read in flight skip its put. A write calls it
// after it committed, whether or not it succeeded.
func (c *tagCache) forget(repo string, tags []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if tags == nil {
		for e := c.lru.Front(); e != nil; {
			next := e.Next()
			if e.Value.(*tagEntry).key.repo == repo {
				c.drop(e)
			}
			e = next
		}
		return
	}
	for _, tag := range tags {
		if e := c.m[tagKey{repo, tag}]; e != nil {
			c.drop(e)
		}
	}
}

// clear drops everything (after writes that do not say which tags they
// touched).
func (c *tagCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.lru.Init()
	clear(c.m)
	c.bytes = 0
}

func (c *tagCache) drop(e *list.Element) {
	te := c.lru.Remove(e).(*tagEntry)
	delete(c.m, te.key)
	c.bytes -= entrySize(te.key, te.body)
}
