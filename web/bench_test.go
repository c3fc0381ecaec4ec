package web

import (
	"context"
	"fmt"
	"image/color"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/sqlite"
)

// Benchmark scale: 1,000 Flatpak apps (one tag each) and 90 server
// repositories of 100 tags: 10,000 tags in all.
const (
	benchApps      = 1000
	benchRepos     = 90
	benchRepoTags  = 100
	benchTotalTags = benchApps + benchRepos*benchRepoTags
)

// benchStore fills a SQLite store at that scale through meta directly
// (pushing 11,000 manifests over HTTP would only measure the registry).
func benchStore(b *testing.B) *sqlite.Store {
	b.Helper()
	ctx := context.Background()
	md, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "meta.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { md.Close() })
	cfg := digest.FromString("config")
	put := func(repo string, n int, labels map[string]string, arch string, tags ...string) {
		if err := md.LinkBlob(ctx, repo, cfg, 6); err != nil {
			b.Fatal(err)
		}
		content := fmt.Appendf(nil, `{"schemaVersion":2,"repo":%q,"n":%d}`, repo, n)
		m := &meta.Manifest{
			Repo: repo, Digest: digest.FromBytes(content), MediaType: mtManifest, Content: content,
			ArtifactType: mtConfig, Config: cfg, Labels: labels, OS: "linux", Architecture: arch,
			TotalSize: int64(1000 + n), Refs: []meta.Ref{{Digest: cfg, Kind: meta.RefBlob, MediaType: mtConfig, Size: 6}},
		}
		if err := md.PutManifest(ctx, m, tags...); err != nil {
			b.Fatal(err)
		}
	}
	words := []string{"photo", "music", "editor", "terminal", "game", "chat", "mail", "notes", "maps", "video"}
	for i := range benchApps {
		w := words[i%len(words)]
		id := fmt.Sprintf("org.example.%s%d", w, i)
		a := app{id: id, appdata: appdata(id, fmt.Sprintf("%s %d", w, i), "A "+w+" app number "+fmt.Sprint(i), "", w+"s", "tool"),
			icon: color.RGBA{R: uint8(i), G: uint8(i >> 8), B: 99, A: 255}}
		arch := "amd64"
		if i%4 == 0 {
			arch, a.arch = "arm64", "aarch64"
		}
		put(fmt.Sprintf("apps/%s", id), i, a.labels(b), arch, "stable")
	}
	for r := range benchRepos {
		tags := make([]string, benchRepoTags)
		for i := range tags {
			tags[i] = fmt.Sprintf("v1.%d.%d", r, i)
		}
		put(fmt.Sprintf("library/service-%d", r), r, nil, "amd64", tags...)
	}
	return md
}

func benchHandler(b *testing.B) (*Handler, *snapshot) {
	b.Helper()
	h, err := New(benchStore(b), nil, Options{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	s, err := h.snapshot(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if len(s.apps) != benchApps {
		b.Fatalf("%d apps, want %d", len(s.apps), benchApps)
	}
	tags := 0
	for _, rv := range s.repos {
		tags += len(rv.Tags)
	}
	if tags != benchTotalTags {
		b.Fatalf("%d tags, want %d", tags, benchTotalTags)
	}
	return h, s
}

// BenchmarkCatalog measures the catalogue over 1,000 apps and 10,000 tags
// (one store, filled once, for every sub-benchmark):
//
//   - Search/*: ranking the whole catalogue for one query and cutting a
//     page of 20, as GET /api/v1/search does after its version check;
//   - SearchAPI: a whole GET /api/v1/search through the handler (the
//     version query, ranking, the JSON answer);
//   - Home: a whole GET / through the handler, answered from the home
//     page's memo (nothing changes between requests);
//   - RefreshAfterPush: one push of a server image, then the next
//     request's refresh (the one repository the push touched re-read and
//     put in place, the rest kept);
//   - RefreshAfterAppPush: the same for a new build of an app (its
//     repository re-read, the app regrouped);
//   - Rebuild: the full rebuild (what every change cost before), labels
//     already parsed: reading 10,000 tags and grouping them.
func BenchmarkCatalog(b *testing.B) {
	h, s := benchHandler(b)
	for _, bc := range []struct{ name, q, kind, arch string }{
		{"Everything", "", "", ""},
		{"Exact", "org.example.photo10", "", ""},
		{"Prefix", "phot", "", ""},
		{"Words", "music app", "", ""},
		{"Tag", "v1.42.7", "", ""},
		{"NoMatch", "zzzzzz", "", ""},
		{"AppsOnArm", "editor", "app", "arm64"},
	} {
		b.Run("Search/"+bc.name, func(b *testing.B) {
			q := query{Q: bc.q, Kind: bc.kind, Arch: bc.arch, Page: 1, PerPage: defaultPerPage}
			b.ReportAllocs()
			for b.Loop() {
				s.search(q, nil)
			}
		})
	}
	// A whole GET through the handler, answered 200.
	get := func(path string) func(*testing.B) {
		return func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code)
				}
			}
		}
	}
	b.Run("SearchAPI", get("/api/v1/search?q=phot"))
	b.Run("Home", get("/"))
	// RefreshAfterPush: a push moves one tag of one repository, and the
	// next request refreshes the catalogue (the events name that
	// repository: it alone is re-read, the rest is rebuilt from memory).
	b.Run("RefreshAfterPush", func(b *testing.B) {
		md := h.cat.(*sqlite.Store)
		ctx := context.Background()
		cfg := digest.FromString("config")
		n := 0
		b.ReportAllocs()
		for b.Loop() {
			n++
			content := fmt.Appendf(nil, `{"schemaVersion":2,"refresh":%d}`, n)
			m := &meta.Manifest{Repo: "library/service-7", Digest: digest.FromBytes(content), MediaType: mtManifest,
				Content: content, ArtifactType: mtConfig, Config: cfg, OS: "linux", Architecture: "amd64", TotalSize: 1000,
				Refs: []meta.Ref{{Digest: cfg, Kind: meta.RefBlob, MediaType: mtConfig, Size: 6}}}
			if err := md.PutManifest(ctx, m, "latest"); err != nil {
				b.Fatal(err)
			}
			if _, err := h.snapshot(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	// RefreshAfterAppPush: as RefreshAfterPush, for a new build of one of
	// the apps: that app is regrouped, the other 999 kept.
	b.Run("RefreshAfterAppPush", func(b *testing.B) {
		md := h.cat.(*sqlite.Store)
		ctx := context.Background()
		const repo = "apps/org.example.photo10"
		d, err := md.ResolveTag(ctx, repo, "stable")
		if err != nil {
			b.Fatal(err)
		}
		old, err := md.GetManifest(ctx, repo, d)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		b.ReportAllocs()
		for b.Loop() {
			n++
			content := fmt.Appendf(nil, `{"schemaVersion":2,"app-refresh":%d}`, n)
			m := *old
			m.Digest, m.Content = digest.FromBytes(content), content
			if err := md.PutManifest(ctx, &m, "stable"); err != nil {
				b.Fatal(err)
			}
			s, err := h.snapshot(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if av := s.appByID["org.example.photo10"]; av == nil || av.Latest().Digest != m.Digest {
				b.Fatal("the app's new build is not in the catalogue")
			}
		}
	})
	b.Run("Rebuild", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := h.load(context.Background(), s.version); err != nil {
				b.Fatal(err)
			}
		}
	})
}
