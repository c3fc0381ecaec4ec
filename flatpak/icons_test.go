package flatpak_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/meta"
)

var (
	blue  = color.RGBA{0, 0, 255, 255}
	green = color.RGBA{0, 255, 0, 255}
)

func gifOf(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gif.Encode(&b, image.NewPaletted(image.Rect(0, 0, w, h), []color.Color{blue}), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// bomb is a PNG header claiming 100000×100000 pixels.
func bomb(t testing.TB) []byte {
	t.Helper()
	b := pngOf(t, 64, 64, blue)
	// IHDR width and height are at bytes 16..24; the CRC no longer
	// matches, which DecodeConfig does not check.
	copy(b[16:24], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0})
	return b
}

func TestDecodeIcon(t *testing.T) {
	good := pngOf(t, 64, 64, blue)
	for _, tc := range []struct {
		name, value string
		size        int
		ok          bool
	}{
		{"good 64", dataURI(good), 64, true},
		{"good 128", dataURI(pngOf(t, 128, 128, green)), 128, true},
		{"media type case", "data:IMAGE/PNG;BASE64," + base64.StdEncoding.EncodeToString(good), 64, true},
		{"unpadded base64", "data:image/png;base64," + base64.RawStdEncoding.EncodeToString(good), 64, true},
		{"wrong size for the label", dataURI(good), 128, false},
		{"not square", dataURI(pngOf(t, 64, 32, blue)), 64, false},
		{"huge dimensions", dataURI(bomb(t)), 64, false},
		{"oversize", dataURI(append(good, make([]byte, flatpak.MaxIconURIBytes)...)), 64, false},
		{"gif", "data:image/png;base64," + base64.StdEncoding.EncodeToString(gifOf(t, 64, 64)), 64, false},
		{"gif media type", "data:image/gif;base64," + base64.StdEncoding.EncodeToString(gifOf(t, 64, 64)), 64, false},
		{"svg", "data:image/svg+xml;base64,PHN2Zy8+", 64, false},
		{"broken base64", "data:image/png;base64,iVBORw0KGgo!!!", 64, false},
		{"not base64", "data:image/png," + string(good), 64, false},
		{"truncated png", dataURI(good[:len(good)-20]), 64, false},
		{"url", "https://example.com/icon.png", 64, false},
		{"no comma", "data:image/png;base64", 64, false},
		{"empty", "", 64, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			icon, err := flatpak.DecodeIcon(tc.value, tc.size)
			if !tc.ok {
				if err == nil {
					t.Fatal("DecodeIcon: no error")
				}
				if !errors.Is(err, flatpak.ErrInvalidIcon) {
					t.Errorf("error %v does not wrap ErrInvalidIcon", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeIcon: %v", err)
			}
			if icon.Size != tc.size || icon.Digest != digest.FromBytes(icon.PNG) || !bytes.HasPrefix(icon.PNG, []byte("\x89PNG")) {
				t.Errorf("icon = %d %s %d bytes", icon.Size, icon.Digest, len(icon.PNG))
			}
		})
	}
}

func TestIconsAtPush(t *testing.T) {
	e := newEnv(t, flatpak.Options{})
	p64, p128 := pngOf(t, 64, 64, blue), pngOf(t, 128, 128, blue)
	d := e.push("app", img{labels: flatpakLabels("org.x.App",
		flatpak.LabelIcon64, dataURI(p64), flatpak.LabelIcon128, dataURI(p128))}, "latest")
	// A second app with the same 64 icon: stored once.
	d2 := e.push("other", img{labels: flatpakLabels("org.x.Other", flatpak.LabelIcon64, dataURI(p64))}, "latest")
	// Icons given as annotations count too.
	d3 := e.push("annotated", img{labels: flatpakLabels("org.x.Annotated"),
		annotations: map[string]string{flatpak.LabelIcon128: dataURI(pngOf(t, 128, 128, green))}}, "latest")

	icons := func(repo string, d digest.Digest) map[int]digest.Digest {
		key := meta.ManifestKey{Repo: repo, Digest: d}
		got, err := e.md.ManifestIcons(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		return got[key]
	}
	want64, want128 := digest.FromBytes(p64), digest.FromBytes(p128)
	if got := icons("app", d); got[64] != want64 || got[128] != want128 || len(got) != 2 {
		t.Errorf("icons of app = %v", got)
	}
	if got := icons("other", d2); got[64] != want64 || len(got) != 1 {
		t.Errorf("icons of other = %v", got)
	}
	if got := icons("annotated", d3); len(got) != 1 || got[128] == "" {
		t.Errorf("icons of annotated = %v", got)
	}

	// The index offers /icons/ URLs (relative to the index URL, without a
	// public URL) instead of data: URIs.
	_, plain, ij := e.index(flatpakQuery("amd64", "latest"))
	if bytes.Contains(plain, []byte("data:image")) {
		t.Errorf("index still holds data: URIs: %.300s", plain)
	}
	byRepo := map[string]imageJSON{}
	for _, r := range ij.Results {
		byRepo[r.Name] = r.Images[0]
	}
	base := "/icons/"
	if got := byRepo["app"].Labels[flatpak.LabelIcon64]; got != base+want64.Encoded()+".png" {
		t.Errorf("icon-64 label = %q", got)
	}
	if got := byRepo["app"].Labels[flatpak.LabelIcon128]; got != base+want128.Encoded()+".png" {
		t.Errorf("icon-128 label = %q", got)
	}
	if got := byRepo["annotated"].Annotations[flatpak.LabelIcon128]; !strings.HasPrefix(got, base) {
		t.Errorf("icon-128 annotation = %q", got)
	}

	// The icon itself.
	res, body := e.do("GET", flatpak.IconPath(want128), nil)
	if res.StatusCode != http.StatusOK || !bytes.Equal(body, p128) {
		t.Fatalf("GET icon: %s, %d bytes", res.Status, len(body))
	}
	for k, v := range map[string]string{
		"Content-Type":           "image/png",
		"Cache-Control":          "public, max-age=31536000, immutable",
		"ETag":                   `"` + want128.Encoded() + `"`,
		"X-Content-Type-Options": "nosniff",
	} {
		if got := res.Header.Get(k); got != v {
			t.Errorf("icon %s = %q, want %q", k, got, v)
		}
	}
	res, _ = e.do("GET", flatpak.IconPath(want128), nil, "If-None-Match", `"`+want128.Encoded()+`"`)
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("icon with If-None-Match: %s", res.Status)
	}
	// "*" matches an icon that exists (304), and no unknown one: that is
	// answered as without the header, 404 (RFC 9110 §13.1.2).
	res, _ = e.do("GET", flatpak.IconPath(want128), nil, "If-None-Match", "*")
	if res.StatusCode != http.StatusNotModified || res.Header.Get("ETag") != `"`+want128.Encoded()+`"` {
		t.Errorf("icon with If-None-Match *: %s, ETag %q", res.Status, res.Header.Get("ETag"))
	}
	res, _ = e.do("GET", flatpak.IconPath(digest.FromString("unknown")), nil, "If-None-Match", "*")
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown icon with If-None-Match *: %s, want 404", res.Status)
	}
	res, body = e.do("HEAD", flatpak.IconPath(want64), nil)
	if res.StatusCode != http.StatusOK || len(body) != 0 || res.Header.Get("Content-Length") != strconv.Itoa(len(p64)) {
		t.Errorf("HEAD icon: %s, %d bytes, Content-Length %s", res.Status, len(body), res.Header.Get("Content-Length"))
	}
	for _, p := range []string{
		flatpak.IconPath(digest.FromString("unknown")),
		"/icons/" + want64.Encoded(),
		"/icons/" + strings.ToUpper(want64.Encoded()) + ".png",
		"/icons/",
	} {
		if res, _ := e.do("GET", p, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", p, res.Status)
		}
	}

	// Deleting the manifests deletes their icons.
	for _, m := range []struct {
		repo string
		d    digest.Digest
	}{{"app", d}, {"other", d2}} {
		if res, _ := e.do("DELETE", "/v2/"+m.repo+"/manifests/"+m.d.String(), nil); res.StatusCode != http.StatusAccepted {
			t.Fatalf("delete: %s", res.Status)
		}
	}
	if res, _ := e.do("GET", flatpak.IconPath(want64), nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("icon of deleted manifests: %s, want 404", res.Status)
	}
}

// TestBadIconsStillPush: a malformed icon never fails the push; the icon
// is skipped with a warning, not stored, and left out of the index.
func TestBadIconsStillPush(t *testing.T) {
	for _, tc := range []struct {
		name, value string
	}{
		{"oversize", dataURI(append(pngOf(t, 64, 64, blue), make([]byte, flatpak.MaxIconURIBytes)...))},
		{"wrong dimensions", dataURI(pngOf(t, 128, 128, blue))},
		{"decompression bomb header", dataURI(bomb(t))},
		{"not png", "data:image/png;base64," + base64.StdEncoding.EncodeToString(gifOf(t, 64, 64))},
		{"broken base64", "data:image/png;base64,%%%not base64%%%"},
		{"svg", "data:image/svg+xml;base64,PHN2Zz48c2NyaXB0Pjwvc2NyaXB0Pjwvc3ZnPg=="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, flatpak.Options{})
			good := pngOf(t, 128, 128, green)
			d := e.push("app", img{labels: flatpakLabels("org.x.App", flatpak.LabelIcon64, tc.value, flatpak.LabelIcon128, dataURI(good))}, "latest")
			if res, _ := e.do("GET", "/v2/app/manifests/latest", nil); res.StatusCode != http.StatusOK {
				t.Fatalf("pull after push: %s", res.Status)
			}
			key := meta.ManifestKey{Repo: "app", Digest: d}
			all, err := e.md.ManifestIcons(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			if got := all[key]; len(got) != 1 || got[128] != digest.FromBytes(good) {
				t.Errorf("icons = %v, want only the good 128 one", all)
			}
			if !strings.Contains(e.logs.String(), "icon label skipped") {
				t.Errorf("no warning logged:\n%s", e.logs)
			}
			_, _, ij := e.index(flatpakQuery("amd64", "latest"))
			labels := ij.Results[0].Images[0].Labels
			if _, ok := labels[flatpak.LabelIcon64]; ok {
				t.Errorf("bad icon label kept in the index: %.100q", labels[flatpak.LabelIcon64])
			}
			if !strings.HasSuffix(labels[flatpak.LabelIcon128], digest.FromBytes(good).Encoded()+".png") {
				t.Errorf("good icon label = %q", labels[flatpak.LabelIcon128])
			}
		})
	}
}

// TestIconsPreparedBeforeStore: the recorder decodes a pushed manifest's
// icons into the manifest before it is stored, writing nothing itself
// (the store records them in the manifest's own transaction: one write
// per push); an icon that does not decode is left out, the rest kept.
func TestIconsPreparedBeforeStore(t *testing.T) {
	rec := flatpak.NewIconRecorder(panicStore{}, nil)
	p64, p128 := pngOf(t, 64, 64, blue), pngOf(t, 128, 128, green)
	m := &meta.Manifest{Repo: "app", Digest: digest.FromString("m"), Labels: map[string]string{
		flatpak.LabelIcon64: dataURI(p64), flatpak.LabelIcon128: "data:image/png;base64,not-base64!",
	}, Annotations: map[string]string{flatpak.LabelIcon128: dataURI(p128)}}
	rec.PrepareManifest(t.Context(), m)
	rec.ManifestStored(t.Context(), m, []string{"latest"})
	if len(m.Icons) != 1 || m.Icons[0].Size != 64 || m.Icons[0].Digest != digest.FromBytes(p64) || !bytes.Equal(m.Icons[0].PNG, p64) {
		t.Errorf("prepared icons = %+v, want the 64 px one (the label wins over the annotation, and the broken 128 is left out)", m.Icons)
	}
	plain := &meta.Manifest{Repo: "app", Digest: digest.FromString("plain"), Labels: map[string]string{flatpak.LabelIcon64: "https://example.com/icon.png"}}
	rec.PrepareManifest(t.Context(), plain)
	if len(plain.Icons) != 0 {
		t.Errorf("an http(s) icon label was decoded: %+v", plain.Icons)
	}
}

// panicStore fails the test through a panic if the recorder writes.
type panicStore struct{}

func (panicStore) PutIcon(context.Context, meta.ManifestKey, int, digest.Digest, []byte) error {
	panic("the icon recorder wrote on its own; icons go with the manifest")
}
