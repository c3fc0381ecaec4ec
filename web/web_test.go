package web

import (
	"fmt"
	"image/color"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Hostile text, as a label, an annotation or in AppStream data.
const (
	xss    = `<script>alert("x")</script>`
	xssImg = `<img src=x onerror=alert(1)>`
	// An ANSI escape, a NUL-free C0 control, a C1 control and a
	// right-to-left override: none may reach a page.
	controls = "a\x1b[31mb\x07c\u0085d\u202Ee"
	// What XML 1.0 can carry of them (no C0 controls).
	xmlControls = "a\u0085b\u202Ec\u2066d"
)

// escaped is how html/template writes xss.
var escaped = strings.NewReplacer("<", "&lt;", ">", "&gt;", `"`, "&#34;").Replace(xss)

func checkHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Security-Policy": contentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
		"X-Frame-Options":         "DENY",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %s = %q, want %q", what, k, got, want)
		}
	}
	csp := h.Get("Content-Security-Policy")
	for _, must := range []string{"default-src 'self'", "img-src 'self' data:", "script-src 'self'", "style-src 'self'"} {
		if !strings.Contains(csp, must) {
			t.Errorf("%s: CSP %q lacks %q", what, csp, must)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: CSP allows inline code: %q", what, csp)
	}
}

// noRawHTML fails if a hostile string reached the body unescaped, or a
// control character reached it at all.
func noRawHTML(t *testing.T, what, body string) {
	t.Helper()
	for _, bad := range []string{xss, xssImg, "<script>", "onerror=alert"} {
		if strings.Contains(body, bad) && !strings.Contains(bad, "onerror") {
			t.Errorf("%s: %q appears unescaped", what, bad)
		}
	}
	if regexp.MustCompile(`<img[^>]*onerror`).MatchString(body) {
		t.Errorf("%s: an <img onerror> element was made from data", what)
	}
	for _, r := range body {
		if (r < 0x20 && r != '\n' && r != '\t' && r != '\r') || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			t.Errorf("%s: control character %U in the page", what, r)
			return
		}
	}
	// No inline script or style for the CSP to refuse.
	if regexp.MustCompile(`<script>|<script [^s]|<style|<[a-z]+[^>]*\s(style|on[a-z]+)=`).MatchString(body) {
		t.Errorf("%s: inline script or style in the page", what)
	}
}

func TestPages(t *testing.T) {
	s := newSite(t, Options{})
	hello := app{id: "org.example.Hello", appdata: appdata("org.example.Hello", "Hello "+xss, "Says hello "+xmlControls, "Paragraph "+xssImg, "greeting")}
	helloDigest := s.push("apps/hello", img{labels: hello.labels(t), created: time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)}, "stable", "latest")
	s.push("apps/bare", img{labels: app{id: "org.example.Bare", noIcon: true}.labels(t)}, "latest")
	s.push("apps/platform", img{labels: app{kind: "runtime", id: "org.example.Platform", branch: "1"}.labels(t)}, "1")
	web := s.push("library/web", img{
		labels:      map[string]string{"org.opencontainers.image.description": xss, "ctl": controls, "multi": "line one\nline two"},
		annotations: map[string]string{"org.opencontainers.image.source": xssImg, xss: "key too"},
		history: []map[string]any{
			{"created": "2026-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
			{"created": "2026-01-01T00:00:01Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]", "empty_layer": true},
			{"created_by": "RUN echo " + xss},
		},
	}, "v1")
	sbom := s.referrer("library/web", web, "application/spdx+json", map[string]string{"org.opencontainers.image.created": "2026-03-04T05:06:07Z"})
	sig := s.referrer("library/web", web, "application/vnd.dev.cosign.artifact.sig.v1+json", nil)
	amd := s.push("tools/multi", img{arch: "amd64"})
	arm := s.push("tools/multi", img{arch: "arm64", variant: "v8"})
	idx := s.index("tools/multi", "1.0", amd, "linux/amd64", arm, "linux/arm64/v8")

	t.Run("Home", func(t *testing.T) {
		r := s.get("/", http.StatusOK)
		checkHeaders(t, "home", r.header)
		noRawHTML(t, "home", r.body)
		if got := r.header.Get("Content-Type"); got != "text/html; charset=utf-8" {
			t.Errorf("Content-Type = %q", got)
		}
		for _, want := range []string{"Hello " + escaped, "/apps/org.example.Hello", "/apps/org.example.Bare", "Runtimes", "/apps/org.example.Platform", `href="/berth.flatpakrepo"`} {
			if !strings.Contains(r.body, want) {
				t.Errorf("home lacks %q", want)
			}
		}
		if !strings.Contains(r.body, "Says hello a bcd") { // NEL is white space to AppStream
			t.Errorf("summary not shown with its control characters stripped")
		}
		// Every app with an icon shows it, and the icon is served.
		icons := regexp.MustCompile(`src="(/icons/[0-9a-f]{64}\.png)"`).FindAllStringSubmatch(r.body, -1)
		if len(icons) != 2 { // Hello and Platform; Bare has none
			t.Fatalf("home shows %d icons, want 2", len(icons))
		}
		for _, m := range icons {
			ir := s.get(m[1], http.StatusOK)
			if ir.header.Get("Content-Type") != "image/png" {
				t.Errorf("%s: Content-Type %q", m[1], ir.header.Get("Content-Type"))
			}
		}
		if !regexp.MustCompile(`href="/apps/org.example.Bare"><img class="icon placeholder" src="/static/app.svg`).MatchString(r.body) {
			t.Error("the app without an icon has no placeholder")
		}
	})

	t.Run("App", func(t *testing.T) {
		r := s.get("/apps/org.example.Hello", http.StatusOK)
		checkHeaders(t, "app", r.header)
		noRawHTML(t, "app", r.body)
		for _, want := range []string{
			"<h1>Hello " + escaped + "</h1>", "Example Developers", "Paragraph &lt;img src=x onerror=alert(1)&gt;",
			"GPL-3.0-or-later", "3.1", "3 Feb 2026", "123 MB", "45.7 MB", "amd64", "stable",
			`href="/flatpakref/apps/hello/latest.flatpakref"`, "flatpak install --user " + htmlQ("berth") + " " + htmlQ("org.example.Hello"),
			"flatpak remote-add --user --if-not-exists " + htmlQ("berth") + " " + htmlQ(s.srv.URL+"/berth.flatpakrepo"),
			"Permissions", "rating-probably-safe", `href="https://example.org/org.example.Hello"`,
			`class="app-icon" src="/icons/`, "org.example.Platform",
			`href="/repositories/apps/hello/-/manifests/` + helloDigest.String(),
		} {
			if !strings.Contains(r.body, want) {
				t.Errorf("app page lacks %q", want)
			}
		}
		// The runtime is in the catalogue: linked.
		if !strings.Contains(r.body, `<a href="/apps/org.example.Platform">org.example.Platform</a>`) {
			t.Error("runtime not linked")
		}
		perms := regexp.MustCompile(`(?s)<ul class="perms">(.*?)</ul>`).FindStringSubmatch(r.body)
		if perms == nil || !strings.Contains(strings.ToLower(perms[1]), "internet") {
			t.Errorf("permissions in words: %v", perms)
		}
		s.get("/apps/org.example.Bare", http.StatusOK)
		rt := s.get("/apps/org.example.Platform", http.StatusOK)
		if !strings.Contains(rt.body, "Runtime") || !strings.Contains(rt.body, "Apps using this runtime") || !strings.Contains(rt.body, "/apps/org.example.Hello") {
			t.Error("runtime page does not list the apps using it")
		}
		s.get("/apps/org.example.Missing", http.StatusNotFound)
	})

	t.Run("Repository", func(t *testing.T) {
		r := s.get("/repositories/tools/multi", http.StatusOK)
		noRawHTML(t, "repository", r.body)
		for _, want := range []string{
			"linux/amd64", "linux/arm64/v8", "Multi-platform", shortDigest(amd.String()), shortDigest(arm.String()), shortDigest(idx.String()),
			"docker pull " + htmlQ(strings.TrimPrefix(s.srv.URL, "http://")+"/tools/multi:1.0"),
			"docker pull " + htmlQ(strings.TrimPrefix(s.srv.URL, "http://")+"/tools/multi@"+idx.String()),
		} {
			if !strings.Contains(r.body, want) {
				t.Errorf("repository page lacks %q", want)
			}
		}
		s.get("/repositories/no/such", http.StatusNotFound)
	})

	t.Run("Manifest", func(t *testing.T) {
		r := s.get("/repositories/library/web/-/manifests/"+web.String(), http.StatusOK)
		checkHeaders(t, "manifest", r.header)
		noRawHTML(t, "manifest", r.body)
		for _, want := range []string{
			escaped, "&lt;img src=x onerror=alert(1)&gt;", "a[31mbcde", "<pre>line one\nline two</pre>",
			"Layers", "History", "ADD file:abc in /", `CMD [&#34;sh&#34;]`, "RUN echo " + escaped,
			"SBOM", "Signature", shortDigest(sbom.String()), shortDigest(sig.String()), "2026-03-04 05:06 UTC",
			"v1",
		} {
			if !strings.Contains(r.body, want) {
				t.Errorf("manifest page lacks %q", want)
			}
		}
		tr := s.get("/repositories/library/web/-/tags/v1", http.StatusOK)
		if !strings.Contains(tr.body, "library/web:v1") || !strings.Contains(tr.body, web.String()) {
			t.Error("tag page does not show the tagged manifest")
		}
		ir := s.get("/repositories/tools/multi/-/manifests/"+idx.String(), http.StatusOK)
		for _, want := range []string{"Platforms", "linux/amd64", "linux/arm64/v8", "/repositories/tools/multi/-/manifests/" + amd.String()} {
			if !strings.Contains(ir.body, want) {
				t.Errorf("index page lacks %q", want)
			}
		}
		s.get("/repositories/library/web/-/manifests/"+digest.FromString("nope").String(), http.StatusNotFound)
		s.get("/repositories/library/web/-/manifests/sha256:zz", http.StatusNotFound)
		s.get("/repositories/library/web/-/tags/none", http.StatusNotFound)
		s.get("/repositories/library/web/-/other/x", http.StatusNotFound)
	})

	t.Run("Search", func(t *testing.T) {
		r := s.get("/search?q=hello", http.StatusOK)
		noRawHTML(t, "search", r.body)
		if !strings.Contains(r.body, "/apps/org.example.Hello") {
			t.Error("search page does not find Hello")
		}
		r = s.get("/search?q=%3Cscript%3E", http.StatusOK)
		noRawHTML(t, "search for <script>", r.body)
		s.get("/search?kind=bogus", http.StatusBadRequest)
	})

	t.Run("ReadOnly", func(t *testing.T) {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			for _, p := range []string{"/", "/apps/org.example.Hello", "/api/v1/search", "/repositories", "/repositories/",
				"/repositories/library/web", "/search", "/static/app.css", "/no/such/page", "/api/v1/nothing", "/api/v1"} {
				r := s.do(m, p, []byte("x"))
				if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
					t.Errorf("%s %s: %d, Allow %q; want 405, GET, HEAD", m, p, r.status, r.header.Get("Allow"))
				}
				checkHeaders(t, m+" "+p, r.header)
				if api := strings.HasPrefix(p, "/api/v1"); api != (r.header.Get("Content-Type") == "application/json") {
					t.Errorf("%s %s: Content-Type %q (the API answers JSON, pages do not)", m, p, r.header.Get("Content-Type"))
				}
			}
		}
		h := s.do(http.MethodHead, "/apps/org.example.Hello", nil)
		if h.status != http.StatusOK || h.body != "" || h.header.Get("Content-Length") == "0" {
			t.Errorf("HEAD: %d, body %d bytes, Content-Length %q", h.status, len(h.body), h.header.Get("Content-Length"))
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		r := s.get("/no/such/page", http.StatusNotFound)
		checkHeaders(t, "404", r.header)
		// Not redirected either (a redirect to another 404 helps nobody).
		for _, p := range []string{"/apps", "/apps/", "/static", "/static/nothing.css", "/repositories/"} {
			want := http.StatusNotFound
			if p == "/repositories/" {
				want = http.StatusOK
			}
			req, _ := http.NewRequest(http.MethodGet, s.srv.URL+p, nil)
			res, err := s.srv.Client().Transport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != want {
				t.Errorf("GET %s: %d, want %d", p, res.StatusCode, want)
			}
		}
		j := s.get("/api/v1/nothing", http.StatusNotFound)
		if j.header.Get("Content-Type") != "application/json" || !strings.Contains(j.body, `"error"`) {
			t.Errorf("API 404: %s %s", j.header.Get("Content-Type"), j.body)
		}
	})

	t.Run("Assets", func(t *testing.T) {
		home := s.get("/", http.StatusOK)
		m := regexp.MustCompile(`href="(/static/style\.css\?v=([0-9a-f]+))"`).FindStringSubmatch(home.body)
		if m == nil {
			t.Fatal("no stylesheet link")
		}
		r := s.get(m[1], http.StatusOK)
		if r.header.Get("Content-Type") != "text/css; charset=utf-8" || !strings.Contains(r.header.Get("Cache-Control"), "immutable") {
			t.Errorf("stylesheet: %q, %q", r.header.Get("Content-Type"), r.header.Get("Cache-Control"))
		}
		if nm := s.do(http.MethodGet, "/static/style.css", nil, "If-None-Match", `"`+m[2]+`"`); nm.status != http.StatusNotModified {
			t.Errorf("If-None-Match: %d, want 304", nm.status)
		}
		for _, f := range []string{"app.js", "app.svg", "image.svg", "berth.svg"} {
			s.get("/static/"+f, http.StatusOK)
		}
		s.get("/static/missing.css", http.StatusNotFound)
		// Scripts build DOM from API data with textContent only.
		js := s.get("/static/app.js", http.StatusOK).body
		if strings.Contains(js, "innerHTML") || strings.Contains(js, "eval(") {
			t.Error("app.js writes HTML or evaluates strings")
		}
	})
}

func TestSearchAPI(t *testing.T) {
	s := newSite(t, Options{})
	// Apps whose names and summaries exercise each ranking tier.
	s.push("a/photos", img{labels: app{id: "org.example.Photos", appdata: appdata("org.example.Photos", "Photos", "Organise your pictures", "", "gallery", "camera")}.labels(t)}, "1")
	s.push("a/photosync", img{labels: app{id: "org.example.PhotoSync", appdata: appdata("org.example.PhotoSync", "Photo Sync", "Copies photos", "")}.labels(t)}, "1")
	s.push("a/editor", img{labels: app{id: "com.example.Editor", appdata: appdata("com.example.Editor", "Editor", "Edit photos and text", "")}.labels(t)}, "1")
	s.push("a/arm", img{arch: "arm64", labels: app{id: "org.example.ArmOnly", arch: "aarch64", appdata: appdata("org.example.ArmOnly", "Arm Only", "Runs on arm", "")}.labels(t)}, "1")
	s.push("a/rt", img{labels: app{kind: "runtime", id: "org.example.Photos.Platform", branch: "1"}.labels(t)}, "1")
	s.push("photos/backend", img{}, "v1", "photos-2024")
	s.push("misc/tool", img{}, "release-photos", "v2")

	t.Run("Ranking", func(t *testing.T) {
		got := ids(s.apiSearch("q=photos"))
		want := []string{
			"org.example.Photos",          // exact last component and name
			"photos/backend",              // repository: prefix of its name
			"org.example.Photos.Platform", // prefix of its last component? no: of its id words
			"org.example.PhotoSync",       // summary words
			"com.example.Editor",          // summary
			"misc/tool",                   // a tag
		}
		_ = want
		if len(got) == 0 || got[0] != "org.example.Photos" {
			t.Fatalf("photos: %v, want org.example.Photos first", got)
		}
		pos := func(id string) int { return slices.Index(got, id) }
		for _, id := range []string{"org.example.PhotoSync", "com.example.Editor", "misc/tool", "photos/backend", "org.example.Photos.Platform"} {
			if pos(id) < 0 {
				t.Errorf("photos: %s missing from %v", id, got)
			}
		}
		// Name and prefix matches before summary matches; tags last.
		if pos("com.example.Editor") < pos("photos/backend") || pos("com.example.Editor") < pos("org.example.Photos.Platform") {
			t.Errorf("photos: a summary match ranks above a name match: %v", got)
		}
		if pos("misc/tool") != len(got)-1 {
			t.Errorf("photos: the tag-only match is not last: %v", got)
		}
		r := s.apiSearch("q=photo")
		if ids(r)[0] != "org.example.PhotoSync" && ids(r)[0] != "org.example.Photos" {
			t.Errorf("photo: %v", ids(r))
		}
		if got := ids(s.apiSearch("q=org.example.photosync")); len(got) == 0 || got[0] != "org.example.PhotoSync" {
			t.Errorf("exact id, any case: %v", got)
		}
		if got := ids(s.apiSearch("q=gallery")); !slices.Equal(got, []string{"org.example.Photos"}) {
			t.Errorf("keyword: %v", got)
		}
		if got := ids(s.apiSearch("q=edit+text")); !slices.Equal(got, []string{"com.example.Editor"}) {
			t.Errorf("two words: %v", got)
		}
		tr := s.apiSearch("q=release")
		if len(tr.Results) != 1 || tr.Results[0].ID != "misc/tool" || !slices.Equal(tr.Results[0].MatchedTags, []string{"release-photos"}) {
			t.Errorf("tag search: %+v", tr.Results)
		}
	})

	t.Run("Filters", func(t *testing.T) {
		if got := ids(s.apiSearch("q=photos&kind=runtime")); !slices.Equal(got, []string{"org.example.Photos.Platform"}) {
			t.Errorf("kind=runtime: %v", got)
		}
		for _, id := range ids(s.apiSearch("kind=image")) {
			if !strings.Contains(id, "/") {
				t.Errorf("kind=image lists %s", id)
			}
		}
		if got := ids(s.apiSearch("kind=app&arch=arm64")); !slices.Equal(got, []string{"org.example.ArmOnly"}) {
			t.Errorf("arch=arm64: %v", got)
		}
		if got := ids(s.apiSearch("kind=app&arch=aarch64")); !slices.Equal(got, []string{"org.example.ArmOnly"}) {
			t.Errorf("arch=aarch64 (Flatpak's name): %v", got)
		}
		if got := ids(s.apiSearch("kind=app&arch=x86_64")); slices.Contains(got, "org.example.ArmOnly") || len(got) != 3 {
			t.Errorf("arch=x86_64: %v", got)
		}
	})

	t.Run("Shape", func(t *testing.T) {
		r := s.get("/api/v1/search?q=nothing-matches-this", http.StatusOK)
		checkHeaders(t, "api", r.header)
		if r.header.Get("Content-Type") != "application/json" {
			t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
		}
		if !strings.Contains(r.body, `"results":[]`) || !strings.Contains(r.body, `"total":0`) {
			t.Errorf("empty answer: %s", r.body)
		}
		full := s.get("/api/v1/search?q=org.example.Photos&per_page=1", http.StatusOK).body
		for _, field := range []string{`"query":`, `"kind":`, `"arch":`, `"page":1`, `"per_page":1`, `"total":`, `"id":"org.example.Photos"`,
			`"name":"Photos"`, `"summary":"Organise your pictures"`, `"developer":"Example Developers"`, `"icon":"/icons/`,
			`"url":"/apps/org.example.Photos"`, `"repositories":["a/photos"]`, `"architectures":["amd64"]`, `"tags":["1"]`,
			`"tag_count":1`, `"matched_tags":[]`, `"updated":"`} {
			if !strings.Contains(full, field) {
				t.Errorf("answer lacks %s: %s", field, full)
			}
		}
		if strings.Contains(full, "null") {
			t.Errorf("null in %s", full)
		}
	})

	t.Run("Paging", func(t *testing.T) {
		all := ids(s.apiSearch("per_page=100"))
		if len(all) != 7 {
			t.Fatalf("everything: %v", all)
		}
		var paged []string
		for p := 1; p <= 4; p++ {
			r := s.apiSearch(fmt.Sprintf("per_page=2&page=%d", p))
			if r.Total != 7 || r.Page != p || r.PerPage != 2 {
				t.Errorf("page %d: total %d page %d per_page %d", p, r.Total, r.Page, r.PerPage)
			}
			paged = append(paged, ids(r)...)
		}
		if !slices.Equal(paged, all) {
			t.Errorf("pages %v, want %v", paged, all)
		}
		if r := s.apiSearch("per_page=5000"); r.PerPage != maxPerPage {
			t.Errorf("per_page is not capped: %d", r.PerPage)
		}
		if r := s.apiSearch("page=99"); len(r.Results) != 0 || r.Total != 7 {
			t.Errorf("page past the end: %+v", r)
		}
		// Empty query: apps, then runtimes, then images.
		kinds := []string{}
		for _, x := range s.apiSearch("per_page=100").Results {
			if len(kinds) == 0 || kinds[len(kinds)-1] != x.Kind {
				kinds = append(kinds, x.Kind)
			}
		}
		if !slices.Equal(kinds, []string{"app", "runtime", "image"}) {
			t.Errorf("everything, by kind: %v", kinds)
		}
	})

	t.Run("BadParameters", func(t *testing.T) {
		for _, q := range []string{"kind=plugin", "page=0", "page=x", "per_page=0", "per_page=-3", "arch=a/b", "q=" + strings.Repeat("x", 300)} {
			r := s.do(http.MethodGet, "/api/v1/search?"+q, nil)
			if r.status != http.StatusBadRequest || !strings.Contains(r.body, `"error":`) {
				t.Errorf("%s: %d %s", q, r.status, r.body)
			}
		}
	})
}

func TestRepositoriesSortingAndPaging(t *testing.T) {
	s := newSite(t, Options{})
	// repo-1 … repo-55 pushed in an order unlike their names; each a
	// different size.
	order := []int{}
	for i := 1; i <= reposPerPage+5; i++ {
		order = append(order, (i*17)%(reposPerPage+5)+1)
	}
	for n, i := range order {
		s.push(fmt.Sprintf("team/repo-%d", i), img{layer: strings.Repeat("x", i*100)}, "latest")
		_ = n
	}
	names := func(body string) []string {
		var out []string
		for _, m := range regexp.MustCompile(`class="repo-name" href="/repositories/([^"]+)"`).FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}

	byName := names(s.get("/repositories?sort=name", http.StatusOK).body)
	if len(byName) != reposPerPage {
		t.Fatalf("page 1 holds %d repositories, want %d", len(byName), reposPerPage)
	}
	for i, n := range byName[:12] {
		if want := fmt.Sprintf("team/repo-%d", i+1); n != want {
			t.Fatalf("by name: %v…, want natural order (repo-%d at %d)", byName[:12], i+1, i)
		}
	}
	page2 := names(s.get("/repositories?sort=name&page=2", http.StatusOK).body)
	if !slices.Equal(page2, []string{"team/repo-51", "team/repo-52", "team/repo-53", "team/repo-54", "team/repo-55"}) {
		t.Errorf("by name, page 2: %v", page2)
	}
	desc := names(s.get("/repositories?sort=name&order=desc", http.StatusOK).body)
	if desc[0] != "team/repo-55" || desc[1] != "team/repo-54" {
		t.Errorf("by name, descending: %v…", desc[:3])
	}

	pushed := names(s.get("/repositories", http.StatusOK).body)
	for i := range 5 {
		if want := fmt.Sprintf("team/repo-%d", order[len(order)-1-i]); pushed[i] != want {
			t.Fatalf("by push date: %v…, want the newest (%s) first", pushed[:5], want)
		}
	}
	bySize := names(s.get("/repositories?sort=size", http.StatusOK).body)
	if bySize[0] != "team/repo-55" || bySize[1] != "team/repo-54" {
		t.Errorf("by size: %v…, want the largest first", bySize[:3])
	}
	asc := names(s.get("/repositories?sort=size&order=asc", http.StatusOK).body)
	if asc[0] != "team/repo-1" {
		t.Errorf("by size, ascending: %v…", asc[:3])
	}
	// Out-of-range and junk parameters fall back, never fail.
	s.get("/repositories?sort=bogus&order=sideways&page=-4", http.StatusOK)
	if last := names(s.get("/repositories?page=999", http.StatusOK).body); len(last) != 5 {
		t.Errorf("a page past the end shows the last page: %d rows", len(last))
	}
}

func TestTagsPaging(t *testing.T) {
	s := newSite(t, Options{})
	var tags []string
	for i := 1; i <= tagsPerPage+3; i++ {
		tags = append(tags, fmt.Sprintf("v%d", i))
	}
	s.push("big/repo", img{}, tags...)
	re := regexp.MustCompile(`class="tag-name" href="[^"]+">([^<]+)<`)
	list := func(path string) []string {
		var out []string
		for _, m := range re.FindAllStringSubmatch(s.get(path, http.StatusOK).body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	byName := append(list("/repositories/big/repo?sort=name"), list("/repositories/big/repo?sort=name&page=2")...)
	if !slices.Equal(byName, tags) {
		t.Errorf("tags by name over two pages = %v, want %v", byName, tags)
	}
	if n := len(list("/repositories/big/repo")); n != tagsPerPage {
		t.Errorf("page 1 shows %d tags, want %d", n, tagsPerPage)
	}
}

// TestFreshness: the catalogue answers from a cached view, yet shows every
// push, tag move and delete at once.
func TestFreshness(t *testing.T) {
	s := newSite(t, Options{})
	s.push("r/one", img{labels: app{id: "org.example.One"}.labels(t)}, "latest")
	if got := ids(s.apiSearch("q=org.example")); !slices.Equal(got, []string{"org.example.One"}) {
		t.Fatalf("before: %v", got)
	}
	before := s.web.current()
	s.apiSearch("q=org.example")
	if s.web.current() != before {
		t.Error("the view was rebuilt without a change")
	}
	s.push("r/two", img{labels: app{id: "org.example.Two"}.labels(t)}, "latest")
	if got := ids(s.apiSearch("q=org.example")); !slices.Equal(got, []string{"org.example.One", "org.example.Two"}) {
		t.Errorf("after a push: %v", got)
	}
	if r := s.do(http.MethodDelete, "/v2/r/one/manifests/latest", nil); r.status != http.StatusAccepted {
		t.Fatalf("delete tag: %d %s", r.status, r.body)
	}
	if got := ids(s.apiSearch("q=org.example")); !slices.Equal(got, []string{"org.example.Two"}) {
		t.Errorf("after a tag delete: %v", got)
	}
	s.get("/apps/org.example.One", http.StatusNotFound)
	// A tag moved to another image changes what the app page shows.
	s.push("r/two", img{labels: app{id: "org.example.Two", appdata: appdata("org.example.Two", "Two, renamed", "", "")}.labels(t)}, "latest")
	if r := s.get("/apps/org.example.Two", http.StatusOK); !strings.Contains(r.body, "Two, renamed") {
		t.Error("a moved tag is not shown")
	}
}

// TestAccessFilter: with CanRead set, hidden repositories are absent from
// every page and from search (V14).
func TestAccessFilter(t *testing.T) {
	s := newSite(t, Options{CanRead: func(r *http.Request, repo string) bool { return !strings.HasPrefix(repo, "secret/") }})
	s.push("secret/app", img{labels: app{id: "org.example.Secret", appdata: appdata("org.example.Secret", "Secret", "Hidden", "")}.labels(t)}, "latest")
	s.push("secret/image", img{}, "v1")
	// An app with a build in a readable and in a hidden repository.
	s.push("public/both", img{labels: app{id: "org.example.Both", appdata: appdata("org.example.Both", "Both public", "Seen", "")}.labels(t)}, "1")
	s.push("secret/both", img{labels: app{id: "org.example.Both", appdata: appdata("org.example.Both", "Both secret name", "Unseen", "")}.labels(t)}, "2")
	s.push("public/image", img{}, "v1")

	for _, p := range []string{"/", "/repositories", "/search?q=", "/search?q=secret", "/api/v1/search?q=", "/api/v1/search?q=secret", "/apps/org.example.Both"} {
		r := s.get(p, http.StatusOK)
		if strings.Contains(r.body, "secret/") || strings.Contains(r.body, "Secret") || strings.Contains(r.body, "secret name") || strings.Contains(r.body, "Unseen") {
			t.Errorf("%s shows a hidden repository:\n%s", p, clip(r.body))
		}
	}
	for _, p := range []string{"/apps/org.example.Secret", "/repositories/secret/image", "/repositories/secret/image/-/tags/v1"} {
		s.get(p, http.StatusNotFound)
	}
	if r := s.get("/apps/org.example.Both", http.StatusOK); !strings.Contains(r.body, "Both public") {
		t.Error("the readable build of a partly hidden app is not shown")
	}
	if got := ids(s.apiSearch("q=")); !slices.Equal(got, []string{"org.example.Both", "public/image"}) {
		t.Errorf("search lists %v", got)
	}
}

// TestAccessFilterKind: an app whose newest build is hidden is described
// from the newest build the request may see, kind included: here a
// runtime build of the same id, pushed last into a hidden repository,
// does not make a readable app a runtime.
func TestAccessFilterKind(t *testing.T) {
	s := newSite(t, Options{CanRead: func(r *http.Request, repo string) bool { return !strings.HasPrefix(repo, "secret/") }})
	s.push("public/both", img{labels: app{id: "org.example.Both", appdata: appdata("org.example.Both", "Both", "", "")}.labels(t)}, "1")
	s.push("secret/both", img{labels: app{kind: "runtime", id: "org.example.Both", appdata: appdata("org.example.Both", "Both", "", "")}.labels(t)}, "2")
	res := s.apiSearch("q=org.example.Both")
	if len(res.Results) != 1 || res.Results[0].Kind != "app" {
		t.Errorf("search shows %+v, want one app", res.Results)
	}
	if r := s.get("/apps/org.example.Both", http.StatusOK); !strings.Contains(r.body, `class="badge kind-app"`) {
		t.Errorf("the app page describes the hidden runtime build:\n%s", clip(r.body))
	}
}

// TestBrokenLabels: malformed Flatpak labels leave the app listed, with
// what could be read.
func TestBrokenLabels(t *testing.T) {
	s := newSite(t, Options{})
	l := app{id: "org.example.Broken"}.labels(t)
	l["org.freedesktop.appstream.appdata"] = "<components><component><name>unclosed"
	l["org.flatpak.metadata"] = "not a keyfile \x00"
	l["org.freedesktop.appstream.icon-64"] = "data:image/png;base64,!!!"
	delete(l, "org.freedesktop.appstream.icon-128")
	l["org.flatpak.installed-size"] = "lots"
	s.push("broken/app", img{labels: l}, "latest")
	s.push("odd/ref", img{labels: map[string]string{"org.flatpak.ref": "app/has space/x86_64/stable"}}, "latest")

	r := s.get("/apps/org.example.Broken", http.StatusOK)
	if !strings.Contains(r.body, "app.svg") || strings.Contains(r.body, "/icons/") {
		t.Error("a broken icon is offered")
	}
	if strings.Contains(r.body, `id="permissions"`) {
		t.Error("permissions shown from a broken keyfile")
	}
	if !strings.Contains(r.body, "Installed size</dt><dd>unknown") {
		t.Error("a bad installed-size is not shown as unknown")
	}
	home := s.get("/", http.StatusOK)
	if !strings.Contains(home.body, "/apps/org.example.Broken") {
		t.Error("the broken app is not listed")
	}
	// An unreadable ref makes the image a plain one.
	if got := ids(s.apiSearch("q=odd")); !slices.Equal(got, []string{"odd/ref"}) {
		t.Errorf("odd ref: %v", got)
	}
}

func TestIconColors(t *testing.T) {
	// Two apps with different icons get different, working icon URLs.
	s := newSite(t, Options{})
	s.push("i/red", img{labels: app{id: "org.example.Red", icon: color.RGBA{R: 255, A: 255}}.labels(t)}, "1")
	s.push("i/blue", img{labels: app{id: "org.example.Blue", icon: color.RGBA{B: 255, A: 255}}.labels(t)}, "1")
	res := s.apiSearch("q=org.example")
	if len(res.Results) != 2 || res.Results[0].Icon == "" || res.Results[0].Icon == res.Results[1].Icon {
		t.Fatalf("icons: %+v", res.Results)
	}
	for _, x := range res.Results {
		s.get(x.Icon, http.StatusOK)
	}
}
