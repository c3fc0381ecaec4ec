package flatpak_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"image/color"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/sqlite"
)

// recordingMeta records the repositories each index query is restricted
// to (nil: the whole index).
type recordingMeta struct {
	*sqlite.Store
	mu    sync.Mutex
	reads [][]string
}

func (r *recordingMeta) IndexImages(ctx context.Context, filter meta.IndexFilter, fn func(img, list *meta.Manifest, tags []string, icons map[int]digest.Digest) error) (int64, error) {
	r.mu.Lock()
	r.reads = append(r.reads, slices.Clone(filter.Repositories))
	r.mu.Unlock()
	return r.Store.IndexImages(ctx, filter, fn)
}

func (r *recordingMeta) take() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reads
	r.reads = nil
	return out
}

// serveGzip answers GET /index/static?query from h, gzipped.
func serveGzip(t *testing.T, h http.Handler, query string) (etag string, gz []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://berth.test/index/static?"+query, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := newRecorder()
	h.ServeHTTP(rec, req)
	if rec.code != http.StatusOK {
		t.Fatalf("status %d", rec.code)
	}
	return rec.hdr.Get("ETag"), rec.body.Bytes()
}

func gunzip(t *testing.T, gz []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr) // checks the CRC-32 and the length
	if err != nil {
		t.Fatalf("the gzip body does not decode: %v", err)
	}
	return plain
}

// TestIndexIncremental: after each kind of change, the cached index is
// brought up to date by re-reading only the repositories the events name,
// and the answer is the very bytes (and ETag) a full build gives.
func TestIndexIncremental(t *testing.T) {
	e := newEnvWithout(t, flatpak.Options{})
	rm := &recordingMeta{Store: e.md}
	h := flatpak.New(rm, flatpak.Options{}, nil)
	q := flatpakQuery("amd64", "latest")
	icon := pngOf(t, 64, 64, color.RGBA{R: 200, A: 255})
	app := func(i int, seed string) (string, digest.Digest) {
		repo := fmt.Sprintf("apps/a%02d", i)
		labels := flatpakLabels(fmt.Sprintf("org.x.A%02d", i), flatpak.LabelIcon64, dataURI(icon))
		return repo, e.push(repo, img{labels: labels, seed: seed}, "latest")
	}
	// Enough apps for several compressed groups.
	digests := map[string]digest.Digest{}
	for i := range 60 {
		repo, d := app(i, "1")
		digests[repo] = d
	}
	e.push("server", img{seed: "1"}, "v1")

	serveGzip(t, h, q)
	if reads := rm.take(); len(reads) != 1 || reads[0] != nil {
		t.Fatalf("first build read %v, want the whole index once", reads)
	}
	check := func(what string, incremental bool) {
		t.Helper()
		etag, gz := serveGzip(t, h, q)
		reads := rm.take()
		wholeETag, whole := serveGzip(t, flatpak.New(e.md, flatpak.Options{}, nil), q)
		if etag != wholeETag || !bytes.Equal(gz, whole) {
			t.Errorf("%s: the refreshed answer (ETag %s, %d bytes) is not the full build's (%s, %d bytes)", what, etag, len(gz), wholeETag, len(whole))
			if a, b := gunzip(t, gz), gunzip(t, whole); !bytes.Equal(a, b) {
				t.Errorf("%s: bodies differ:\n%s\n%s", what, a, b)
			}
		}
		gunzip(t, gz)
		whole0 := slices.ContainsFunc(reads, func(r []string) bool { return r == nil })
		switch {
		case incremental && (whole0 || len(reads) == 0):
			t.Errorf("%s: reads %v, want only the changed repositories", what, reads)
		case !incremental && !whole0:
			t.Errorf("%s: reads %v, want the whole index", what, reads)
		}
	}

	app(3, "2") // a tag moves
	check("a tag moved", true)
	if reads := rm.take(); len(reads) != 0 {
		t.Errorf("unchanged: reads %v", reads)
	}
	app(60, "1") // a new app
	check("a new app", true)
	e.deleteTag("apps/a05", "latest")
	check("a tag deleted", true)
	e.push("server", img{seed: "2"}, "v2") // not Flatpak: no new answer
	app(7, "2")
	check("a server push, then an app", true)
	if err := e.md.PutIcon(t.Context(), meta.ManifestKey{Repo: "apps/a09", Digest: digests["apps/a09"]}, 64, digest.FromBytes(icon), icon); err != nil {
		t.Fatal(err)
	}
	check("an icon recorded after the push", true)
	if err := e.md.RecordGCRun(t.Context(), meta.GCRun{}); err != nil {
		t.Fatal(err)
	}
	app(11, "2")
	check("after a gc run", false)
	app(12, "2")
	check("after a full build, incremental again", true)
	app(13, "2")
	if _, err := e.md.PruneEvents(t.Context(), nil, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	check("events pruned, none after them", false)
}

// TestIndexIncrementalAtCap: near Options.MaxIndexBytes a refresh is cut
// exactly when a full build is (it counts what it keeps as a full build
// counts it), so both give the same answer.
func TestIndexIncrementalAtCap(t *testing.T) {
	e := newEnvWithout(t, flatpak.Options{})
	app := func(i int, extra int) {
		labels := flatpakLabels(fmt.Sprintf("org.x.A%02d", i), "org.flatpak.x-padding", strings.Repeat("p", extra))
		e.push(fmt.Sprintf("apps/a%02d", i), img{labels: labels, seed: fmt.Sprint(extra)}, "latest")
	}
	for i := range 12 {
		app(i, 10)
	}
	q := flatpakQuery("amd64", "latest")
	_, whole := serveGzip(t, flatpak.New(e.md, flatpak.Options{}, nil), q)
	opts := flatpak.Options{MaxIndexBytes: int64(len(gunzip(t, whole))) + 2000}
	h := flatpak.New(e.md, opts, nil)
	compare := func(what string, wantCut bool) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://berth.test/index/static?"+q, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		rec := newRecorder()
		h.ServeHTTP(rec, req)
		etag, gz, cut := rec.hdr.Get("ETag"), rec.body.Bytes(), rec.hdr.Get("X-Berth-Index-Truncated") == "true"
		wholeETag, whole := serveGzip(t, flatpak.New(e.md, opts, nil), q)
		if etag != wholeETag || !bytes.Equal(gz, whole) {
			t.Errorf("%s: the answer (ETag %s) is not a full build's (%s)", what, etag, wholeETag)
		}
		if cut != wantCut {
			t.Errorf("%s: truncated %v, want %v", what, cut, wantCut)
		}
	}
	compare("under the cap", false)
	app(3, 1000) // still fits
	compare("grown, under the cap", false)
	app(5, 3000) // past it
	compare("past the cap", true)
	app(5, 10) // under it again
	compare("under the cap again", false)
}
