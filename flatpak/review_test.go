package flatpak_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/meta"
)

// TestIndexOnlyProtocolLabels: the index passes on the labels (and
// annotations) the protocol defines, nothing else, however large the
// others are; org.flatpak.metadata stays byte for byte (V25).
func TestIndexOnlyProtocolLabels(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	big := strings.Repeat("x", 1<<20)
	labels := flatpakLabels("org.x.App",
		"org.flatpak.commit-metadata.xa.token-type", "AQAAAABp",
		"org.freedesktop.appstream.appdata", "<components/>",
		"io.github.containers.DeltaUrl", "/deltas/ab/cd.json",
		"maintainer", "ops", "org.example.blob", big)
	e.push("app", img{labels: labels, annotations: map[string]string{"org.example.note": big, "org.flatpak.ref": "app/org.x.App/x86_64/stable"}}, "latest")
	_, plain, ij := e.index(flatpakQuery("amd64", "latest"))
	if len(plain) > 64<<10 {
		t.Errorf("index answer is %d bytes: non-protocol labels were copied", len(plain))
	}
	got := ij.Results[0].Images[0]
	for k := range got.Labels {
		if _, ok := labels[k]; !ok || k == "maintainer" || k == "org.example.blob" {
			t.Errorf("index label %q", k)
		}
	}
	for _, k := range []string{flatpak.LabelRef, flatpak.LabelMetadata, "org.flatpak.installed-size", "org.flatpak.download-size",
		"org.flatpak.commit-metadata.xa.token-type", flatpak.LabelAppdata, "io.github.containers.DeltaUrl"} {
		if got.Labels[k] != labels[k] {
			t.Errorf("label %s = %q, want %q", k, got.Labels[k], labels[k])
		}
	}
	if len(got.Annotations) != 1 || got.Annotations[flatpak.LabelRef] == "" {
		t.Errorf("annotations = %v, want only org.flatpak.ref", got.Annotations)
	}
}

// TestIndexCapsImage: an image whose protocol labels exceed
// MaxIndexImageBytes is left out with a warning; the others stay, and the
// answer stays small however many such images are pushed.
func TestIndexCapsImage(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	good := e.push("good", img{labels: flatpakLabels("org.x.Good")}, "latest")
	huge := strings.Repeat("<p>x</p>", flatpak.MaxIndexImageBytes/8+1)
	for i := range 2 {
		e.push(fmt.Sprint("huge", i), img{labels: flatpakLabels("org.x.Huge", flatpak.LabelAppdata, huge), seed: fmt.Sprint(i)}, "latest")
	}
	_, plain, ij := e.index(flatpakQuery("amd64", "latest"))
	if got := ij.digests(); len(got) != 1 || got[0] != at("good", good) {
		t.Errorf("index = %q, want only the good image", got)
	}
	if len(plain) > 16<<10 {
		t.Errorf("answer is %d bytes", len(plain))
	}
	if n := strings.Count(e.logs.String(), "Flatpak labels are too large"); n != 2 {
		t.Errorf("%d warnings, want 2", n)
	}
	// Just under the cap is listed.
	fits := strings.Repeat("y", flatpak.MaxIndexImageBytes-64<<10)
	e.push("fits", img{labels: flatpakLabels("org.x.Fits", flatpak.LabelAppdata, fits)}, "latest")
	if _, _, ij := e.index(flatpakQuery("amd64", "latest")); len(ij.digests()) != 2 {
		t.Errorf("an image under the cap is left out: %q", ij.digests())
	}
}

// TestIndexIconURLsPassThrough: icon labels that are http(s) URLs reach
// the client unchanged; data: URIs become /icons/ URLs; anything else is
// dropped.
func TestIndexIconURLsPassThrough(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	e.push("url", img{labels: flatpakLabels("org.x.Url",
		flatpak.LabelIcon64, "https://cdn.example.com/icons/64/org.x.Url.png",
		flatpak.LabelIcon128, "javascript:alert(1)")}, "latest")
	e.push("data", img{labels: flatpakLabels("org.x.Data", flatpak.LabelIcon64, dataURI(pngOf(t, 64, 64, blue)))}, "latest")
	_, _, ij := e.index(flatpakQuery("amd64", "latest"))
	byRepo := map[string]imageJSON{}
	for _, r := range ij.Results {
		byRepo[r.Name] = r.Images[0]
	}
	if got := byRepo["url"].Labels[flatpak.LabelIcon64]; got != "https://cdn.example.com/icons/64/org.x.Url.png" {
		t.Errorf("http icon = %q, want it unchanged", got)
	}
	if got, ok := byRepo["url"].Labels[flatpak.LabelIcon128]; ok {
		t.Errorf("javascript: icon passed on: %q", got)
	}
	if got := byRepo["data"].Labels[flatpak.LabelIcon64]; !strings.HasPrefix(got, "/icons/") {
		t.Errorf("data: icon = %q", got)
	}
	if strings.Contains(e.logs.String(), "icon label skipped") && strings.Contains(e.logs.String(), "cdn.example.com") {
		t.Errorf("an http icon was treated as a bad data: URI:\n%s", e.logs)
	}
}

// TestIndexETagPerEncoding: the gzipped and the identity bodies are
// different representations with different ETags, each a fingerprint of
// its answer; If-None-Match works with either.
func TestIndexETagPerEncoding(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	e.push("app", img{labels: flatpakLabels("org.x.App")}, "latest")
	gz, _ := e.do("GET", "/index/static", nil, "Accept-Encoding", "gzip")
	id, _ := e.do("GET", "/index/static", nil)
	tgz, tid := gz.Header.Get("ETag"), id.Header.Get("ETag")
	if tgz == "" || tid == "" || tgz == tid {
		t.Fatalf("ETags gzip %q, identity %q: want two different ones", tgz, tid)
	}
	for _, tc := range []struct {
		name     string
		accept   string
		inm      string
		wantCode int
		wantTag  string
	}{
		{"gzip, its own tag", "gzip", tgz, http.StatusNotModified, tgz},
		{"identity, its own tag", "", tid, http.StatusNotModified, tid},
		{"gzip, cache holds the identity body", "gzip", tid, http.StatusNotModified, tid},
		{"identity, cache holds the gzip body", "", tgz, http.StatusNotModified, tgz},
		{"stale", "gzip", `"stale"`, http.StatusOK, tgz},
	} {
		hdrs := []string{"If-None-Match", tc.inm}
		if tc.accept != "" {
			hdrs = append(hdrs, "Accept-Encoding", tc.accept)
		}
		res, _ := e.do("GET", "/index/static", nil, hdrs...)
		if res.StatusCode != tc.wantCode || res.Header.Get("ETag") != tc.wantTag {
			t.Errorf("%s: %s ETag %q, want %d %q", tc.name, res.Status, res.Header.Get("ETag"), tc.wantCode, tc.wantTag)
		}
	}
	// A change elsewhere that leaves this answer alone keeps its ETag.
	e.push("other", img{labels: map[string]string{"maintainer": "ops"}}, "latest")
	if res, _ := e.do("GET", "/index/static?label:org.flatpak.ref:exists=1", nil, "Accept-Encoding", "gzip"); res.Header.Get("ETag") != tgz {
		t.Errorf("unrelated push changed the ETag")
	}
}

// TestFilesBehindProxy: without a public URL, the .flatpakrepo and
// .flatpakref files take the scheme and host from X-Forwarded-* only when
// told to trust them; otherwise from the connection.
func TestFilesBehindProxy(t *testing.T) {
	proxied := []string{"X-Forwarded-Proto", "https", "X-Forwarded-Host", "flatpak.example.com"}
	for _, tc := range []struct {
		name    string
		trust   bool
		headers []string
		want    string
	}{
		{"trusted", true, proxied, "https://flatpak.example.com"},
		{"trusted, several proxies", true, []string{"X-Forwarded-Proto", "https, http", "X-Forwarded-Host", "flatpak.example.com, inner"}, "https://flatpak.example.com"},
		{"trusted, bad values ignored", true, []string{"X-Forwarded-Proto", "gopher", "X-Forwarded-Host", "evil.example/x?"}, "http://berth.test"},
		{"not trusted", false, proxied, "http://berth.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, flatpak.Options{TrustForwardedHeaders: tc.trust})
			e.push("app", img{labels: flatpakLabels("org.x.App")}, "latest")
			for _, p := range []string{flatpak.RepoFilePath, flatpak.FlatpakrefPath("app", "latest")} {
				req, _ := http.NewRequest("GET", "http://berth.test"+p, nil)
				for i := 0; i+1 < len(tc.headers); i += 2 {
					req.Header.Set(tc.headers[i], tc.headers[i+1])
				}
				rec := newRecorder()
				e.h.ServeHTTP(rec, req)
				if !strings.Contains(rec.body.String(), "Url=oci+"+tc.want+"/\n") {
					t.Errorf("%s:\n%s\nwant Url=oci+%s/", p, rec.body.String(), tc.want)
				}
			}
		})
	}
	// TLS without any header: https.
	req, _ := http.NewRequest("GET", "https://berth.test/", nil)
	req.TLS = &tls.ConnectionState{}
	if got := flatpak.BaseURL(req, "", false); got != "https://berth.test" {
		t.Errorf("BaseURL over TLS = %q", got)
	}
	if got := flatpak.BaseURL(req, "https://pub.example/x/", true); got != "https://pub.example/x" {
		t.Errorf("BaseURL with a public URL = %q", got)
	}
}

// TestFlatpakrefParsesOnce: the AppStream data a .flatpakref uses is parsed
// once per image, however often the file is fetched.
func TestFlatpakrefParsesOnce(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	e.push("apps/rich", img{labels: flatpakLabels("org.example.Rich", flatpak.LabelAppdata, string(readTestdata(t, "rich.appdata.xml")))}, "latest")
	for range 5 {
		res, body := e.do("GET", flatpak.FlatpakrefPath("apps/rich", "latest"), nil)
		if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("Title=Rich Example\n")) {
			t.Fatalf("flatpakref: %s\n%s", res.Status, body)
		}
	}
	if n := flatpak.AppstreamParses(e.h); n != 1 {
		t.Errorf("%d AppStream parses for 5 requests, want 1", n)
	}
}

// TestIconRecorderIgnoresCancel: the push's client going away does not
// stop the icons from being recorded.
func TestIconRecorderIgnoresCancel(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	d := e.push("app", img{labels: flatpakLabels("org.x.App")}, "latest")
	m, err := e.md.GetManifest(t.Context(), "app", d)
	if err != nil {
		t.Fatal(err)
	}
	m.Labels[flatpak.LabelIcon64] = dataURI(pngOf(t, 64, 64, blue))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	flatpak.NewIconRecorder(e.md, nil).Record(ctx, m)
	key := meta.ManifestKey{Repo: "app", Digest: d}
	icons, err := e.md.ManifestIcons(t.Context(), key)
	if err != nil || len(icons[key]) != 1 {
		t.Errorf("icons after a cancelled push = %v, %v; want one", icons, err)
	}
}

// TestIconBackfill: icons of manifests pushed while nothing recorded them
// are recorded by Backfill, which is idempotent and bounded.
func TestIconBackfill(t *testing.T) {
	e := newEnvWithout(t, flatpak.Options{}) // no IconRecorder at push
	p64 := pngOf(t, 64, 64, blue)
	var keys []meta.ManifestKey
	for i := range 5 {
		repo := fmt.Sprint("app", i)
		d := e.push(repo, img{labels: flatpakLabels("org.x.App", flatpak.LabelIcon64, dataURI(p64)), seed: repo}, "latest")
		keys = append(keys, meta.ManifestKey{Repo: repo, Digest: d})
	}
	e.push("bad", img{labels: flatpakLabels("org.x.Bad", flatpak.LabelIcon64, "data:image/png;base64,AAAA")}, "latest")
	e.push("url", img{labels: flatpakLabels("org.x.Url", flatpak.LabelIcon64, "https://example.com/i.png")}, "latest")
	rec := flatpak.NewIconRecorder(e.md, e.logger())
	count := func() int {
		all, err := e.md.ManifestIcons(t.Context(), keys...)
		if err != nil {
			t.Fatal(err)
		}
		return len(all)
	}
	if n, err := rec.Backfill(t.Context(), e.md, 3); err != nil || n != 3 || count() != 3 {
		t.Errorf("Backfill(limit 3) = %d, %v; %d manifests with icons, want 3, 3", n, err, count())
	}
	if n, err := rec.Backfill(t.Context(), e.md, 100); err != nil || n != 3 || count() != 5 {
		t.Errorf("second Backfill = %d, %v (%d with icons), want 3 looked at (2 left and the bad one), 5", n, err, count())
	}
	if n, err := rec.Backfill(t.Context(), e.md, 100); err != nil || n != 1 {
		t.Errorf("third Backfill = %d, %v; want only the bad one looked at again", n, err)
	}
}
