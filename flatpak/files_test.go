package flatpak_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/flatpak"
)

func TestRepoFile(t *testing.T) {
	e := newEnv(t, flatpak.Options{Title: "Acme\nApps", RemoteName: "acme"})
	res, body := e.do("GET", flatpak.RepoFilePath, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", flatpak.RepoFilePath, res.Status)
	}
	want := "[Flatpak Repo]\n" +
		"Title=Acme Apps\n" +
		"Url=oci+" + e.srv.URL + "/\n" +
		"Homepage=" + e.srv.URL + "/\n" +
		"Comment=Flatpak apps from the Acme Apps registry\n"
	if string(body) != want {
		t.Errorf("flatpakrepo =\n%s\nwant\n%s", body, want)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/vnd.flatpak.repo" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cd := res.Header.Get("Content-Disposition"); cd != `attachment; filename="acme.flatpakrepo"` {
		t.Errorf("Content-Disposition = %q", cd)
	}
}

func TestFlatpakref(t *testing.T) {
	e := newEnv(t, flatpak.Options{PublicURL: "https://registry.example.com/"})
	appdata := string(readTestdata(t, "rich.appdata.xml"))
	d := e.push("apps/rich", img{labels: flatpakLabels("org.example.Rich",
		flatpak.LabelAppdata, appdata, flatpak.LabelIcon128, dataURI(pngOf(t, 128, 128, blue)))}, "latest", "beta")
	_ = d
	rt := map[string]string{
		flatpak.LabelRef:      "runtime/org.berth.Platform/x86_64/1",
		flatpak.LabelMetadata: "[Runtime]\nname=org.berth.Platform\n",
	}
	e.push("org.berth.platform", img{labels: rt}, "latest")
	amd := e.push("multi", img{labels: flatpakLabels("org.x.Multi")})
	e.pushIndex("multi", map[digest.Digest]string{amd: "linux/amd64"}, []digest.Digest{amd}, "latest")
	e.push("server", img{labels: map[string]string{"maintainer": "ops"}}, "latest")

	get := func(repo, tag string) (int, string) {
		res, body := e.do("GET", flatpak.FlatpakrefPath(repo, tag), nil)
		return res.StatusCode, string(body)
	}
	code, body := get("apps/rich", "latest")
	want := "[Flatpak Ref]\nVersion=1\nName=org.example.Rich\nBranch=stable\nTitle=Rich Example\n" +
		"Url=oci+https://registry.example.com/\nIsRuntime=false\nSuggestRemoteName=berth\n" +
		"RuntimeRepo=https://registry.example.com/berth.flatpakrepo\nComment=An example with everything\n" +
		"Homepage=https://example.org/rich\nIcon=https://registry.example.com/icons/"
	if code != http.StatusOK || !strings.HasPrefix(body, want) {
		t.Errorf("flatpakref = %d\n%s\nwant prefix\n%s", code, body, want)
	}
	if _, body := get("apps/rich", "beta"); !strings.Contains(body, "Url=oci+https://registry.example.com/#beta\n") {
		t.Errorf("flatpakref for tag beta does not select it:\n%s", body)
	}
	if _, body := get("org.berth.platform", "latest"); !strings.Contains(body, "IsRuntime=true\n") || strings.Contains(body, "RuntimeRepo") ||
		!strings.Contains(body, "Name=org.berth.Platform\nBranch=1\nTitle=org.berth.Platform\n") {
		t.Errorf("runtime flatpakref:\n%s", body)
	}
	if code, body := get("multi", "latest"); code != http.StatusOK || !strings.Contains(body, "Name=org.x.Multi\n") {
		t.Errorf("flatpakref of an index: %d\n%s", code, body)
	}
	for _, p := range []string{
		flatpak.FlatpakrefPath("server", "latest"),
		flatpak.FlatpakrefPath("apps/rich", "nope"),
		flatpak.FlatpakrefPath("nope", "latest"),
		"/flatpakref/apps/rich/latest",
		"/flatpakref/latest.flatpakref",
		"/flatpakref/BAD/latest.flatpakref",
	} {
		if res, _ := e.do("GET", p, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", p, res.Status)
		}
	}
}

func TestParseRef(t *testing.T) {
	for _, s := range []string{"app/org.example.A/x86_64/stable", "runtime/org.x.Y/aarch64/1"} {
		r, err := flatpak.ParseRef(s)
		if err != nil || r.String() != s {
			t.Errorf("ParseRef(%q) = %+v, %v", s, r, err)
		}
	}
	for _, s := range []string{"", "app/a/x86_64", "other/a/b/c", "app//x/y", "app/a/b/c/d"} {
		if _, err := flatpak.ParseRef(s); err == nil {
			t.Errorf("ParseRef(%q): no error", s)
		}
	}
}
