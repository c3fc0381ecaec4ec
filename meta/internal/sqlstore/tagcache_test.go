package sqlstore

import (
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

func body(content string) meta.ManifestBody {
	return meta.ManifestBody{Digest: digest.FromString(content), MediaType: "m", Content: []byte(content)}
}

// TestTagCacheBounds: the cache holds at most maxBytes, dropping the least
// recently used first, and never keeps an entry over maxEntry.
func TestTagCacheBounds(t *testing.T) {
	one := entrySize(tagKey{"r", "t0"}, body("content 0"))
	c := newTagCache(3*one, 2*one)
	for i := range 3 {
		_, _, gen := c.get("r", fmt.Sprint("t", i))
		c.put("r", fmt.Sprint("t", i), body(fmt.Sprint("content ", i)), gen)
	}
	if _, ok, _ := c.get("r", "t0"); !ok { // t0 becomes the most recent
		t.Fatal("t0 not cached")
	}
	_, _, gen := c.get("r", "t3")
	c.put("r", "t3", body("content 3"), gen)
	if _, ok, _ := c.get("r", "t1"); ok {
		t.Error("t1, the least recently used, was kept past maxBytes")
	}
	for _, tag := range []string{"t0", "t2", "t3"} {
		if _, ok, _ := c.get("r", tag); !ok {
			t.Errorf("%s dropped", tag)
		}
	}
	if c.bytes != 3*one || c.lru.Len() != 3 || len(c.m) != 3 {
		t.Errorf("bytes %d, %d entries, %d keys; want %d, 3, 3", c.bytes, c.lru.Len(), len(c.m), 3*one)
	}
	_, _, gen = c.get("r", "big")
	c.put("r", "big", body(strings.Repeat("x", 2*one)), gen)
	if _, ok, _ := c.get("r", "big"); ok {
		t.Error("an entry over maxEntry was kept")
	}
}

// TestTagCacheForget: forget drops the named tags, or all of a repository's,
// and nothing of another repository; a read that began before a forget
// does not store its answer; clear drops everything.
func TestTagCacheForget(t *testing.T) {
	c := newTagCache(1<<20, 1<<10)
	fill := func(repo, tag string) {
		_, _, gen := c.get(repo, tag)
		c.put(repo, tag, body(repo+":"+tag), gen)
	}
	cached := func(repo, tag string) bool {
		b, ok, _ := c.get(repo, tag)
		if ok && string(b.Content) != repo+":"+tag {
			t.Fatalf("%s:%s serves %q", repo, tag, b.Content)
		}
		return ok
	}
	for _, k := range [][2]string{{"a", "1"}, {"a", "2"}, {"a", "3"}, {"b", "1"}} {
		fill(k[0], k[1])
	}
	c.forget("a", []string{"1"})
	if cached("a", "1") || !cached("a", "2") || !cached("b", "1") {
		t.Error("forget(a, [1]) did not drop exactly a:1")
	}
	c.forget("a", nil)
	if cached("a", "2") || cached("a", "3") || !cached("b", "1") {
		t.Error("forget(a, nil) did not drop exactly a's tags")
	}

	_, _, gen := c.get("a", "1") // a read misses...
	c.forget("a", []string{"9"}) // ...a write to any tag finishes...
	c.put("a", "1", body("a:1"), gen)
	if cached("a", "1") {
		t.Error("a read that began before a write stored its answer")
	}

	c.clear()
	if cached("b", "1") || c.bytes != 0 {
		t.Errorf("clear left b:1 or %d bytes", c.bytes)
	}
}
