package web

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/meta"
)

// TestInstallNeedsLatest: the remote installs what is tagged latest, so
// remote-add + install are offered only when a build is; otherwise only
// the .flatpakref file, which names its tag.
func TestInstallNeedsLatest(t *testing.T) {
	s := newSite(t, Options{})
	s.push("apps/beta", img{labels: app{id: "org.example.Beta"}.labels(t)}, "beta")
	r := s.get("/apps/org.example.Beta", http.StatusOK)
	if strings.Contains(r.body, "flatpak install --user "+htmlQ("berth")) || strings.Contains(r.body, "flatpak remote-add") {
		t.Errorf("install commands offered without a latest tag:\n%s", clip(r.body))
	}
	if !strings.Contains(r.body, "flatpak install --user --from "+htmlQ(s.srv.URL+"/flatpakref/apps/beta/beta.flatpakref")) {
		t.Errorf("no .flatpakref command for tag beta:\n%s", clip(r.body))
	}
	s.push("apps/beta", img{labels: app{id: "org.example.Beta"}.labels(t), layer: "v2"}, "latest")
	r = s.get("/apps/org.example.Beta", http.StatusOK)
	for _, want := range []string{"flatpak install --user " + htmlQ("berth") + " " + htmlQ("org.example.Beta"), "flatpak remote-add --user --if-not-exists " + htmlQ("berth"),
		"/flatpakref/apps/beta/latest.flatpakref"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("with a latest tag, the page lacks %q", want)
		}
	}
}

// TestFlatpakDisabledHidesLinks: with the remote off, no page links to
// its files or offers its commands.
func TestFlatpakDisabledHidesLinks(t *testing.T) {
	s := newSite(t, Options{FlatpakDisabled: true})
	s.push("apps/hello", img{labels: app{id: "org.example.Hello"}.labels(t)}, "latest")
	for _, p := range []string{"/", "/apps/org.example.Hello", "/repositories", "/repositories/apps/hello"} {
		r := s.get(p, http.StatusOK)
		for _, bad := range []string{"flatpakrepo", "flatpakref", "Add to Flatpak", "flatpak install", "flatpak remote-add"} {
			if strings.Contains(r.body, bad) {
				t.Errorf("%s shows %q with the remote disabled", p, bad)
			}
		}
	}
}

// TestCommandsBehindProxy: the commands name the address clients use:
// from X-Forwarded-* only when trusted.
func TestCommandsBehindProxy(t *testing.T) {
	for _, trust := range []bool{true, false} {
		s := newSite(t, Options{TrustForwardedHeaders: trust})
		s.push("apps/hello", img{labels: app{id: "org.example.Hello"}.labels(t)}, "latest")
		r := s.do(http.MethodGet, "/apps/org.example.Hello", nil, "X-Forwarded-Proto", "https", "X-Forwarded-Host", "flatpak.example.com")
		want := s.srv.URL + "/berth.flatpakrepo"
		if trust {
			want = "https://flatpak.example.com/berth.flatpakrepo"
		}
		if !strings.Contains(r.body, "flatpak remote-add --user --if-not-exists "+htmlQ("berth")+" "+htmlQ(want)) {
			t.Errorf("trust=%v: remote-add does not name %s", trust, want)
		}
	}
}

// TestAppVersionsCapped: the app page lists the newest maxBuildsShown
// builds and links to the repository for the rest.
func TestAppVersionsCapped(t *testing.T) {
	s := newSite(t, Options{})
	labels := app{id: "org.example.Many", noIcon: true}.labels(t)
	for i := range maxBuildsShown + 3 {
		s.push("apps/many", img{labels: labels, layer: fmt.Sprint("build ", i)}, fmt.Sprint("v", i))
	}
	r := s.get("/apps/org.example.Many", http.StatusOK)
	versions := r.body[strings.Index(r.body, `<section class="versions">`):]
	if n := strings.Count(versions, "<tr>") - 1; n != maxBuildsShown { // one is the header row
		t.Errorf("%d builds listed, want %d", n, maxBuildsShown)
	}
	if !strings.Contains(versions, fmt.Sprint("of ", maxBuildsShown+3, " builds")) || !strings.Contains(versions, `href="/repositories/apps/many"`) {
		t.Errorf("no link to the other builds:\n%s", clip(versions))
	}
}

// TestHistoryCacheBudget: the history cache holds at most
// historyCacheBytes, and one history at most maxHistoryRows rows with
// bounded strings.
func TestHistoryCacheBudget(t *testing.T) {
	var c historyCache
	row := historyRow{CreatedBy: strings.Repeat("x", maxCreatedBy), Comment: strings.Repeat("c", maxComment)}
	rows := make([]historyRow, maxHistoryRows)
	for i := range rows {
		rows[i] = row
	}
	per := historyBytes(rows)
	for i := range int(historyCacheBytes/per) * 3 {
		c.put(digestOf(i), rows)
	}
	if c.bytes > historyCacheBytes || c.bytes != sumBytes(&c) {
		t.Errorf("cache holds %d bytes (counted %d), budget %d", sumBytes(&c), c.bytes, historyCacheBytes)
	}
	if _, ok := c.get(digestOf(0)); ok {
		t.Error("the oldest history was not evicted")
	}

	s := newSite(t, Options{})
	var hist []map[string]any
	for i := range maxHistoryRows + 10 {
		hist = append(hist, map[string]any{"created_by": strings.Repeat("y", maxCreatedBy+1000), "comment": fmt.Sprint("step ", i)})
	}
	d := s.push("big/history", img{history: hist}, "latest")
	s.get("/repositories/big/history/-/manifests/"+d.String(), http.StatusOK)
	m, err := s.md.GetManifest(t.Context(), "big/history", d)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := s.web.history.get(m.Config)
	if !ok || len(got) != maxHistoryRows {
		t.Fatalf("history of %d rows cached as %d rows (%v)", maxHistoryRows+10, len(got), ok)
	}
	if n := len(got[0].CreatedBy); n > maxCreatedBy+len("…") {
		t.Errorf("created_by kept %d bytes", n)
	}
}

func digestOf(i int) digest.Digest { return digest.Digest(fmt.Sprintf("sha256:%064x", i)) }

func sumBytes(c *historyCache) int64 {
	var n int64
	for _, rows := range c.m {
		n += historyBytes(rows)
	}
	return n
}

// TestLongDataValueCleaned: the shortened form of a long data: value is
// cleaned like any other and cut at a rune boundary.
func TestLongDataValueCleaned(t *testing.T) {
	v := "data:text/plain,\x1b[31m\u202e" + strings.Repeat("é", 100)
	got := kvs(map[string]string{"k": v})[0]
	if strings.ContainsAny(got.Value, "\x1b\u202e") || strings.Contains(got.Value, "\uFFFD") {
		t.Errorf("value = %q: not cleaned, or cut inside a rune", got.Value)
	}
	if !strings.HasSuffix(got.Value, "é…") {
		t.Errorf("value = %q", got.Value)
	}
}

// TestCatalogueUsesRecordedIcons: the catalogue shows the icons recorded
// at push time, not ones recomputed from the labels: an icon label that
// was never recorded shows none, and a recorded one shows once recorded.
func TestCatalogueUsesRecordedIcons(t *testing.T) {
	s := newSiteWithout(t, Options{}) // nothing records icons at push
	d := s.push("apps/hello", img{labels: app{id: "org.example.Hello"}.labels(t)}, "latest")
	if r := s.get("/apps/org.example.Hello", http.StatusOK); strings.Contains(r.body, "/icons/") {
		t.Errorf("an icon not recorded is shown")
	}
	m, err := s.md.GetManifest(t.Context(), "apps/hello", d)
	if err != nil {
		t.Fatal(err)
	}
	flatpak.NewIconRecorder(s.md, nil).Record(t.Context(), m)
	key := meta.ManifestKey{Repo: "apps/hello", Digest: d}
	icons, _ := s.md.ManifestIcons(t.Context(), key)
	want := flatpak.IconPath(icons[key][128])
	if r := s.get("/apps/org.example.Hello", http.StatusOK); !strings.Contains(r.body, `class="app-icon" src="`+want+`"`) {
		t.Errorf("the recorded icon %s is not shown", want)
	}
}
