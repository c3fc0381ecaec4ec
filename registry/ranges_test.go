package registry

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
)

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want byteRange
		bad  bool
	}{
		{in: "0-1023", want: byteRange{0, 1023}},
		{in: "1024-2047", want: byteRange{1024, 2047}},
		{in: "bytes 0-9/10", want: byteRange{0, 9}},
		{in: "bytes=5-5", want: byteRange{5, 5}},
		{in: "10-9", bad: true},
		{in: "-1-5", bad: true},
		{in: "1-", bad: true},
		{in: "1", bad: true},
		{in: "", bad: true},
		{in: "0x1-0x2", bad: true},
		{in: "1-99999999999999999999", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseContentRange(tc.in)
			if tc.bad != (err != nil) || (!tc.bad && got != tc.want) {
				t.Fatalf("parseContentRange(%q) = %v, %v; want %v (error: %v)", tc.in, got, err, tc.want, tc.bad)
			}
		})
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-0", "0-1023", "bytes 1-2/3", "5-4", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseContentRange(s)
		if err == nil && (r.start < 0 || r.end < r.start || r.end-r.start+1 <= 0) {
			t.Fatalf("parseContentRange(%q) = %v", s, r)
		}
	})
}

// TestBlobRangeRefused: what http.ServeContent would let through is
// refused before it: more than maxRanges ranges (a many-part multipart
// answer per request), and an empty suffix, which it would answer 206
// "bytes 100-99/100" (found by FuzzBlobRange).
func TestBlobRangeRefused(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	d := tr.pushBlob("app", bytes.Repeat([]byte("x"), 100))
	for _, rng := range []string{"bytes=" + strings.Repeat("0-1,", maxRanges) + "0-1", "bytes=-0", "bytes=0-1, -000",
		"bytes=- 0", "bytes=-+0", "bytes=0-1,- +0"} {
		r := tr.do("GET", "/v2/app/blobs/"+d.String(), nil, "Range", rng)
		tr.expect(r, 416, string(CodeRangeInvalid))
		if r.header.Get("Content-Range") != "bytes */100" {
			t.Fatalf("%s: Content-Range %q", rng, r.header.Get("Content-Range"))
		}
	}
	// An empty blob has no satisfiable range; with If-Range naming it too.
	empty := tr.pushBlob("app", nil)
	for _, hdr := range [][]string{{"Range", "bytes=-5"}, {"Range", "bytes=-1,-2"}, {"Range", "bytes=0-"},
		{"Range", "bytes=-5", "If-Range", `"` + empty.String() + `"`}} {
		r := tr.do("GET", "/v2/app/blobs/"+empty.String(), nil, hdr...)
		tr.expect(r, 416, string(CodeRangeInvalid))
		if r.header.Get("Content-Range") != "bytes */0" {
			t.Fatalf("%v on an empty blob: Content-Range %q", hdr, r.header.Get("Content-Range"))
		}
	}
	// A Range with an If-Range that does not name the blob is ignored.
	r := tr.do("GET", "/v2/app/blobs/"+d.String(), nil, "Range", "bytes=-0", "If-Range", `"other"`)
	tr.expect(r, 200, "")
	r = tr.do("GET", "/v2/app/blobs/"+d.String(), nil, "Range", "bytes=0-1,5-6")
	tr.expect(r, 206, "")
	if !strings.HasPrefix(r.header.Get("Content-Type"), "multipart/byteranges") {
		t.Fatalf("two ranges: Content-Type %q", r.header.Get("Content-Type"))
	}
}

// FuzzBlobRange sends any Range header for a 2,048-byte blob and for an
// empty one: the answer is the whole blob, the part asked for, or the
// spec's 416 error, never anything else, and never bytes outside the
// blob.
func FuzzBlobRange(f *testing.F) {
	for _, s := range []string{"bytes=0-1", "bytes=-5", "bytes=3-", "bytes=1-2,3-4", "bytes=", "bytes=9223372036854775807-",
		"bytes=5000-", "lines=1-2", "bytes=x-y", "bytes=0-0,0-0,0-0"} {
		f.Add(s)
	}
	tr := newTestRegistry(f, Options{})
	data := make([]byte, 2048)
	for i := range data {
		data[i] = byte(i * 7)
	}
	d := tr.pushBlob("app", data)
	empty := tr.pushBlob("app", nil)
	f.Fuzz(func(t *testing.T, rng string) {
		if strings.ContainsFunc(rng, func(c rune) bool { return c < ' ' && c != '\t' || c == 0x7f }) || !utf8.ValidString(rng) {
			return // not a header value a client can send
		}
		ftr := *tr // the same registry, failing this t
		ftr.t = t
		// An empty blob: all of it (nothing), or 416.
		if r := ftr.do("GET", "/v2/app/blobs/"+empty.String(), nil, "Range", rng); r.status != http.StatusOK &&
			(r.status != http.StatusRequestedRangeNotSatisfiable || r.header.Get("Content-Range") != "bytes */0") || len(r.body) != 0 && r.status == http.StatusOK {
			t.Fatalf("Range %q of an empty blob: %d, Content-Range %q", rng, r.status, r.header.Get("Content-Range"))
		}
		r := ftr.do("GET", "/v2/app/blobs/"+d.String(), nil, "Range", rng)
		switch r.status {
		case http.StatusOK:
			if !bytes.Equal(r.body, data) {
				t.Fatalf("Range %q: 200 with %d bytes", rng, len(r.body))
			}
		case http.StatusPartialContent:
			if cr := r.header.Get("Content-Range"); cr != "" {
				var a, b, n int64
				if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &a, &b, &n); err != nil || a < 0 || b < a || b >= 2048 || n != 2048 {
					t.Fatalf("Range %q: Content-Range %q", rng, cr)
				}
				if !bytes.Equal(r.body, data[a:b+1]) {
					t.Fatalf("Range %q: body is not bytes %d-%d", rng, a, b)
				}
			} else if !strings.HasPrefix(r.header.Get("Content-Type"), "multipart/byteranges") {
				t.Fatalf("Range %q: 206 without Content-Range, Content-Type %q", rng, r.header.Get("Content-Type"))
			}
		case http.StatusRequestedRangeNotSatisfiable:
			if r.code() != string(CodeRangeInvalid) || r.header.Get("Content-Range") != "bytes */2048" {
				t.Fatalf("Range %q: 416 code %q, Content-Range %q, body %s", rng, r.code(), r.header.Get("Content-Range"), r.body)
			}
		default:
			t.Fatalf("Range %q: status %d", rng, r.status)
		}
	})
}

// readFromRecorder is a ResponseRecorder that counts the ReadFrom calls
// (sendfile, on a real connection) and flushes.
type readFromRecorder struct {
	*httptest.ResponseRecorder
	readFroms, flushes int
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.readFroms++
	return io.Copy(r.ResponseRecorder, src)
}

func (r *readFromRecorder) Flush() { r.flushes++ }

// TestBlobBodyReadFrom: the bytes of a blob, whole or a range, reach the
// connection's ReadFrom through the writer that turns ServeContent's 416
// into the spec's, and http.ResponseController reaches the connection
// through it.
func TestBlobBodyReadFrom(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	d := tr.pushBlob("r", bytes.Repeat([]byte("0123456789"), 100))
	for _, rng := range []string{"", "bytes=10-19"} {
		rec := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
		req := httptest.NewRequest(http.MethodGet, "/v2/r/blobs/"+d.String(), nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		tr.reg.ServeHTTP(rec, req)
		if rec.readFroms == 0 || (rec.Code != http.StatusOK && rec.Code != http.StatusPartialContent) {
			t.Errorf("Range %q: %d, %d ReadFrom calls", rng, rec.Code, rec.readFroms)
		}
	}
	rec := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
	rw := &rangeErrors{ResponseWriter: rec}
	if err := http.NewResponseController(rw).Flush(); err != nil || rec.flushes != 1 {
		t.Errorf("Flush through the writer: %v, %d flushes", err, rec.flushes)
	}
}

// TestBlobErrorsNotCacheable: only answers of the blob's bytes or headers
// say it is immutable for a year. An error answer of the same GET (a
// refused Range, a blob gone between Stat and Open) must not, or a shared
// cache keeps the error in its place (found by review).
func TestBlobErrorsNotCacheable(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	d := tr.pushBlob("app", bytes.Repeat([]byte("x"), 100))
	path := "/v2/app/blobs/" + d.String()
	cacheable := func(r resp) bool {
		return r.header.Get("Cache-Control") != "" || r.header.Get("ETag") != ""
	}
	for _, c := range []struct {
		method string
		hdr    []string
		status int
	}{
		{"GET", nil, 200},
		{"HEAD", nil, 200},
		{"GET", []string{"Range", "bytes=0-9"}, 206},
		{"HEAD", []string{"Range", "bytes=0-9"}, 206},
	} {
		r := tr.do(c.method, path, nil, c.hdr...)
		tr.expect(r, c.status, "")
		if r.header.Get("ETag") != `"`+d.String()+`"` || r.header.Get("Cache-Control") != "max-age=31536000, immutable" {
			t.Errorf("%s %v: ETag %q, Cache-Control %q", c.method, c.hdr, r.header.Get("ETag"), r.header.Get("Cache-Control"))
		}
	}
	// Refused before http.ServeContent (an empty suffix), and by it (past
	// the end).
	for _, rng := range []string{"bytes=-0", "bytes=5000-"} {
		r := tr.do("GET", path, nil, "Range", rng)
		tr.expect(r, 416, string(CodeRangeInvalid))
		if cacheable(r) {
			t.Errorf("416 for %s: ETag %q, Cache-Control %q", rng, r.header.Get("ETag"), r.header.Get("Cache-Control"))
		}
	}
	fr := newFaultRegistry(t)
	d = fr.pushBlob("app", []byte("hello"))
	fr.in.FailAlways("blob.Open", fmt.Errorf("gone: %w", blob.ErrNotFound))
	r := fr.do("GET", "/v2/app/blobs/"+d.String(), nil)
	fr.expect(r, 404, string(CodeBlobUnknown))
	if cacheable(r) {
		t.Errorf("404: ETag %q, Cache-Control %q", r.header.Get("ETag"), r.header.Get("Cache-Control"))
	}
}

// TestIfRangeExactly: a Range is honoured only under an If-Range that is
// exactly the blob's ETag. http.ServeContent reads only the first ETag in
// If-Range, so `"<digest>"x` used to pass the range checks (an empty
// suffix answered 206 "bytes 100-99/100", 41 ranges a 41-part answer)
// while ServeContent honoured it (found by review).
func TestIfRangeExactly(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	data := bytes.Repeat([]byte("x"), 100)
	d := tr.pushBlob("app", data)
	path := "/v2/app/blobs/" + d.String()
	etag := `"` + d.String() + `"`
	many := "bytes=" + strings.Repeat("0-0,", 40) + "0-0"
	for _, ir := range []string{etag + "x", etag + `, "other"`, "W/" + etag, `"other"`, "Thu, 01 Jan 2026 00:00:00 GMT"} {
		for _, rng := range []string{"bytes=0-0,-0", many, "bytes=0-9"} {
			for _, method := range []string{"GET", "HEAD"} {
				r := tr.do(method, path, nil, "Range", rng, "If-Range", ir)
				tr.expect(r, 200, "")
				if method == "GET" && !bytes.Equal(r.body, data) {
					t.Errorf("If-Range %s, Range %.20s: 200 with %d bytes, want the whole blob", ir, rng, len(r.body))
				}
				if r.header.Get("Content-Length") != "100" {
					t.Errorf("%s If-Range %s, Range %.20s: Content-Length %q", method, ir, rng, r.header.Get("Content-Length"))
				}
			}
		}
	}
	// The exact ETag: the Range is honoured, and checked.
	for _, rng := range []string{"bytes=0-0,-0", many} {
		tr.expect(tr.do("GET", path, nil, "Range", rng, "If-Range", etag), 416, string(CodeRangeInvalid))
	}
	r := tr.do("GET", path, nil, "Range", "bytes=0-9", "If-Range", etag)
	tr.expect(r, 206, "")
	if len(r.body) != 10 {
		t.Errorf("If-Range exact, bytes=0-9: %d bytes", len(r.body))
	}
}

// TestContentRangeOverflow: a chunk's Content-Range whose length,
// end-start+1, overflows int64 is refused. It used to read as "no length
// given", so a 5-byte chunk was acknowledged against it (found by review).
func TestContentRangeOverflow(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	loc := tr.do("POST", "/v2/r/blobs/uploads/", nil).header.Get("Location")
	// A reader that is not a *bytes.Reader: no Content-Length, chunked.
	r := tr.do("PATCH", loc, io.MultiReader(strings.NewReader("hello")), "Content-Range", "0-9223372036854775807")
	tr.expect(r, 416, string(CodeBlobUploadInvalid))
	st := tr.do("GET", loc, nil)
	tr.expect(st, 204, "")
	// Nothing was stored: the whole blob still goes in from byte 0.
	body := []byte("hello")
	r = tr.do("PATCH", loc, bytes.NewReader(body), "Content-Range", "0-4")
	tr.expect(r, 202, "")
	r = tr.do("PUT", r.header.Get("Location")+"?digest="+digest.FromBytes(body).String(), nil)
	tr.expect(r, 201, "")
}

// TestManifestIfNoneMatch: a manifest GET or HEAD evaluates If-None-Match
// as RFC 9110 §13.1.2 says (weak comparison, a list, "*"); it compared
// the header with the ETag as one string (found by review).
func TestManifestIfNoneMatch(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	img := newImage(t, "a")
	tr.push("r", "v1", img)
	tag := `"` + img.digest.String() + `"`
	for _, ref := range []string{"v1", img.digest.String()} {
		for _, method := range []string{"GET", "HEAD"} {
			for inm, want := range map[string]int{tag: 304, "*": 304, "W/" + tag: 304, `"other", ` + tag: 304,
				`"other"`: 200, tag + "x": 200, `"` + digest.FromString("x").String() + `"`: 200} {
				r := tr.do(method, "/v2/r/manifests/"+ref, nil, "If-None-Match", inm)
				if r.status != want {
					t.Errorf("%s %s If-None-Match %s: %d, want %d", method, ref, inm, r.status, want)
				}
				if want == 304 && (r.header.Get("ETag") != tag || len(r.body) != 0) {
					t.Errorf("%s %s If-None-Match %s: 304 with ETag %q, %d bytes", method, ref, inm, r.header.Get("ETag"), len(r.body))
				}
			}
		}
	}
	// "*" on a manifest that does not exist: 404, as without it.
	tr.expect(tr.do("GET", "/v2/r/manifests/nope", nil, "If-None-Match", "*"), 404, "MANIFEST_UNKNOWN")
}
