package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/sqlite"
)

// TestIncrementalRefresh: after every kind of change (a push, a tag
// moved, a tag deleted, a manifest deleted, an index, a repository
// emptied), the snapshot the catalogue refreshes from the events (only
// the repositories they name re-read) is the one a full load builds.
func TestIncrementalRefresh(t *testing.T) {
	s := newSite(t, Options{})
	ctx := context.Background()
	check := func(what string, wantIncremental bool) {
		t.Helper()
		prev := s.web.current()
		v, err := s.md.CatalogVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, incremental, err := s.web.refresh(ctx, prev, v)
		if err != nil {
			t.Fatalf("%s: refresh: %v", what, err)
		}
		if incremental != wantIncremental {
			t.Fatalf("%s: incremental = %v, want %v", what, incremental, wantIncremental)
		}
		if !incremental {
			if got, err = s.web.load(ctx, v); err != nil {
				t.Fatal(err)
			}
		}
		full, err := s.web.load(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.repos, full.repos) || !reflect.DeepEqual(got.apps, full.apps) || !reflect.DeepEqual(got.items, full.items) {
			t.Errorf("%s: the refreshed catalogue differs from a full load:\nrefreshed %d repos, %d apps, %d items\nfull      %d repos, %d apps, %d items",
				what, len(got.repos), len(got.apps), len(got.items), len(full.repos), len(full.apps), len(full.items))
		}
		s.web.snap.Store(got)
	}
	// checkImages: a change to server images only keeps the apps
	// (buildImages), and still equals a full load.
	checkImages := func(what string) {
		t.Helper()
		prev := s.web.current()
		check(what, true)
		if got := s.web.current(); len(prev.apps) == 0 || len(got.apps) != len(prev.apps) || &got.apps[0] != &prev.apps[0] {
			t.Errorf("%s: the apps were regrouped (%d apps before), want prev's kept", what, len(prev.apps))
		}
	}
	// checkApps: a change to apps regroups those alone (buildChanged):
	// the app other keeps its view, and the result equals a full load.
	checkApps := func(what, other string) {
		t.Helper()
		prev := s.web.current()
		check(what, true)
		if got := s.web.current(); prev.appByID[other] == nil || got.appByID[other] != prev.appByID[other] {
			t.Errorf("%s: the view of %s, which did not change, was rebuilt", what, other)
		}
	}
	s.get("/", http.StatusOK) // the first snapshot: a full load
	check("nothing changed", true)

	other := app{id: "org.example.Other", appdata: appdata("org.example.Other", "Other", "Stays as it is", "")}
	s.push("other", img{labels: other.labels(t)}, "stable")
	check("the first app", true)
	hello := app{id: "org.example.Hello", appdata: appdata("org.example.Hello", "Hello", "Says hello", "")}
	s.push("hello", img{labels: hello.labels(t)}, "latest")
	checkApps("a new app", other.id)
	s.push("hello", img{labels: hello.labels(t), layer: "hello 2"}, "latest")
	checkApps("an app's tag moved to a new build", other.id)
	s.push("hello-beta", img{labels: hello.labels(t), layer: "hello beta", arch: "arm64"}, "beta")
	checkApps("a second repository of the app", other.id)
	s.do(http.MethodDelete, "/v2/hello-beta/manifests/beta", nil)
	checkApps("the second repository emptied", other.id)
	s.push("server", img{layer: "one"}, "v1")
	s.push("server", img{layer: "two"}, "v2", "latest")
	checkImages("a new image repository")
	s.push("aaa", img{layer: "first"}, "v1")
	s.push("zzz", img{layer: "last"}, "v1")
	checkImages("two new repositories, first and last by name")
	s.push("mmm", img{layer: "middle"}, "v1")
	s.push("aaa", img{layer: "first2"}, "v2")
	checkImages("one new in the middle, one changed")
	many := make([]string, 100)
	for i := range many {
		many[i] = fmt.Sprintf("v%d", i)
	}
	s.push("many", img{layer: "many"}, many...)
	checkImages("a repository of many tags, with repositories after it")
	s.push("many", img{layer: "many2"}, "latest")
	checkImages("a tag added to it")
	d3 := s.push("server", img{layer: "three"}, "latest")
	checkImages("a tag moved")
	s.do(http.MethodDelete, "/v2/server/manifests/v1", nil)
	checkImages("a tag deleted")
	s.do(http.MethodDelete, "/v2/server/manifests/"+d3.String(), nil)
	checkImages("a manifest deleted")
	amd := s.push("multi", img{layer: "amd"})
	arm := s.push("multi", img{layer: "arm", arch: "arm64"})
	s.index("multi", "latest", amd, "linux/amd64", arm, "linux/arm64")
	checkImages("an index")
	for _, tag := range []string{"v1", "v2"} {
		s.do(http.MethodDelete, "/v2/aaa/manifests/"+tag, nil)
	}
	checkImages("a repository emptied")
	// Many events over few repositories stay incremental (read a page
	// of events at a time); changes to too many repositories load all.
	lots := make([]string, eventPage+10)
	for i := range lots {
		lots[i] = fmt.Sprintf("t%d", i)
	}
	s.push("server", img{layer: "lots"}, lots...)
	checkImages("more events than a page, one repository")
	for i := range maxChangedRepos + 1 {
		s.push(fmt.Sprintf("wide/r%d", i), img{layer: "wide"}, "v1")
	}
	check("more repositories changed than are re-read one by one", false)

	s.push("mmm", img{labels: hello.labels(t)}, "app")
	checkApps("an app pushed to an image repository", other.id)
	s.do(http.MethodDelete, "/v2/mmm/manifests/app", nil)
	checkApps("an image repository's app removed", other.id)
	s.do(http.MethodDelete, "/v2/hello/manifests/latest", nil)
	checkApps("an app's only tag deleted", other.id)
	s.do(http.MethodDelete, "/v2/other/manifests/stable", nil)
	check("the last app's only tag deleted", true)

	// What cannot be applied repository by repository loads everything:
	// a gc run, and events pruned before the catalogue saw them.
	if err := s.md.RecordGCRun(ctx, meta.GCRun{Manifests: 1}); err != nil {
		t.Fatal(err)
	}
	check("a gc run", false)
	s.push("server", img{layer: "four"}, "v4")
	if _, err := s.md.PruneEvents(ctx, nil, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.push("server", img{layer: "five"}, "v5")
	check("events pruned unseen", false)
	s.push("server", img{layer: "six"}, "v6")
	check("after a full load, incremental again", true)
	s.push("server", img{layer: "seven"}, "v7")
	if _, err := s.md.PruneEvents(ctx, nil, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	check("events pruned, none after them", false)
}

// churning is a store whose catalogue changes between any two looks.
// With ready set, a rebuild (which reads the events outbox first) waits
// for it to close.
type churning struct {
	*sqlite.Store
	v     atomic.Int64
	ready chan struct{}
}

func (c *churning) CatalogVersion(context.Context) (string, error) {
	return strconv.FormatInt(c.v.Add(1), 10), nil
}

func (c *churning) wait(ctx context.Context) {
	if c.ready != nil {
		select {
		case <-c.ready:
		case <-ctx.Done():
		}
	}
}

func (c *churning) LastEventSeq(ctx context.Context) (int64, error) {
	c.wait(ctx)
	return c.Store.LastEventSeq(ctx)
}

func (c *churning) Events(ctx context.Context, after int64, n int) ([]meta.Event, error) {
	c.wait(ctx)
	return c.Store.Events(ctx, after, n)
}

// TestRebuildsCoalesce: under constant change, requests that arrive
// together share a rebuild that started after they asked, instead of
// each waiting for the others' rebuilds and then making its own.
func TestRebuildsCoalesce(t *testing.T) {
	s := newSite(t, Options{})
	s.push("server", img{layer: "one"}, "v1")
	// Rebuilds wait until every request is about to ask: however the
	// requests are scheduled, the first rebuild cannot end before they
	// have all asked.
	md := &churning{Store: s.md, ready: make(chan struct{})}
	h, err := New(md, nil, Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var (
		start sync.WaitGroup
		done  sync.WaitGroup
		about sync.WaitGroup
		mu    sync.Mutex
		got   = map[*snapshot]bool{}
	)
	start.Add(1)
	about.Add(n)
	go func() { about.Wait(); close(md.ready) }()
	for range n {
		done.Go(func() {
			start.Wait()
			about.Done()
			asked := time.Now()
			snap, err := h.snapshot(t.Context())
			if err != nil {
				t.Error(err)
				return
			}
			if !snap.readAt.After(asked) {
				t.Errorf("a request asked at %v got a snapshot read at %v: changes before it asked may be missing", asked, snap.readAt)
			}
			if len(snap.repos) != 1 {
				t.Errorf("snapshot has %d repositories, want 1", len(snap.repos))
			}
			mu.Lock()
			got[snap] = true
			mu.Unlock()
		})
	}
	start.Done()
	done.Wait()
	// One rebuild serves those that asked before it started, a second
	// those that asked while it ran; scheduling may add one.
	if len(got) > 3 {
		t.Errorf("%d concurrent requests made %d rebuilds, want at most 3", n, len(got))
	}
}

// unreadable fails GetManifest, as a busy or failing database would.
type unreadable struct{ *sqlite.Store }

func (unreadable) GetManifest(context.Context, string, digest.Digest) (*meta.Manifest, error) {
	return nil, errors.New("database is locked")
}

// TestRefreshRetriesUnreadLabels: an app whose labels could not be read is
// shown by its id, and the next refresh, whatever it changed, reads them
// again; the fact cache does not keep the labels of every build ever
// pushed between full loads.
func TestRefreshRetriesUnreadLabels(t *testing.T) {
	s := newSite(t, Options{})
	hello := app{id: "org.example.Hello", appdata: appdata("org.example.Hello", "Hello", "Says hello", "")}
	s.push("hello", img{labels: hello.labels(t)}, "latest")
	s.get("/", http.StatusOK)
	if got := s.web.current().appByID[hello.id].Name(); got != "Hello" {
		t.Fatalf("name = %q, want Hello", got)
	}

	s.web.cat = unreadable{s.md}
	s.push("hello", img{labels: hello.labels(t), layer: "build 2"}, "latest")
	s.get("/", http.StatusOK)
	if av := s.web.current().appByID[hello.id]; av == nil || av.Name() != hello.id || !av.unread {
		t.Fatalf("with labels unreadable: %+v, want the app by its id, unread", av)
	}
	s.web.cat = s.md
	// While nothing changes the snapshot is kept until unreadRetry has
	// passed, then a request reads the labels again.
	s.get("/", http.StatusOK)
	if av := s.web.current().appByID[hello.id]; av == nil || !av.unread {
		t.Fatalf("within unreadRetry: %+v, want the snapshot kept", av)
	}
	s.web.unreadRetry = 0
	s.get("/", http.StatusOK)
	if av := s.web.current().appByID[hello.id]; av == nil || av.Name() != "Hello" || av.unread {
		t.Fatalf("after unreadRetry, idle: %+v, want the labels read again", av)
	}
	s.web.unreadRetry = unreadRetry

	// The same after an unrelated push.
	s.web.cat = unreadable{s.md}
	s.push("hello", img{labels: hello.labels(t), layer: "build 2b"}, "latest")
	s.get("/", http.StatusOK)
	if av := s.web.current().appByID[hello.id]; av == nil || !av.unread {
		t.Fatalf("with labels unreadable again: %+v, want unread", av)
	}
	s.web.cat = s.md
	s.push("server", img{layer: "unrelated"}, "v1")
	s.get("/", http.StatusOK)
	if av := s.web.current().appByID[hello.id]; av == nil || av.Name() != "Hello" || av.unread {
		t.Fatalf("after an unrelated push: %+v, want the labels read again", av)
	}
	if u := s.web.current().unread; len(u) != 0 {
		t.Errorf("unread = %q after they were read", u)
	}

	for i := range 2*factSlack + 4 {
		s.push("hello", img{labels: hello.labels(t), layer: fmt.Sprintf("build %d", i+3)}, "latest")
		s.get("/", http.StatusOK)
	}
	live := 0
	for _, av := range s.web.current().apps {
		live += len(av.Builds)
	}
	if n := s.web.facts.len(); n > 2*live+factSlack {
		t.Errorf("fact cache holds %d digests for %d builds shown", n, live)
	}
}
