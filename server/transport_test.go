package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/config"
)

// serveOn runs s.Serve on a fresh 127.0.0.1 listener until the test ends
// and returns its address.
func serveOn(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// startServer is a Server over real stores in a temp dir, serving on
// 127.0.0.1.
func startServer(t *testing.T, edit func(*config.Config)) (*Server, string) {
	t.Helper()
	cfg := testConfig(t)
	cfg.HTTP.ShutdownTimeout = 5 * time.Second
	if edit != nil {
		edit(&cfg)
	}
	s := newServer(t, cfg, nil)
	return s, serveOn(t, s)
}

// rawConn dials addr with a generous overall deadline.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// readResponse reads one response and its body from br.
func readResponse(t *testing.T, br *bufio.Reader) (*http.Response, []byte) {
	t.Helper()
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	res.Body.Close()
	return res, body
}

// exchange writes a raw request on a new connection and reads one
// response.
func exchange(t *testing.T, addr, req string) (*http.Response, []byte) {
	t.Helper()
	c := rawConn(t, addr)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return readResponse(t, bufio.NewReader(c))
}

// Non-canonical paths are refused with 400 on every route and every
// method, never redirected: a 307 keeps the method, so a client following
// it would write into another repository.
func TestNonCanonicalPathsRefused(t *testing.T) {
	_, addr := startServer(t, nil)
	paths := []struct {
		path string
		v2   bool // the spec's JSON error expected
	}{
		{"/v2/a/../b/manifests/latest", true},
		{"/v2/a/./b/manifests/latest", true},
		{"/v2//a/manifests/latest", true},
		{"/v2/a//b/blobs/uploads/", true},
		{"/v2/a/b/..", true},
		{"/v2/a/%2e%2e/b/manifests/latest", true},
		{"/v2/a/%2E/b/blobs/uploads/", true},
		{"/v2/a%2Fb/manifests/latest", true},
		{"/v2/a%2f..%2fb/manifests/latest", true},
		{"/v2/./", true},
		{"//v2/a/manifests/latest", true},
		{"/static/../v2/a/manifests/latest", false},
		{"/index/../v2/a/blobs/uploads/", false},
		{"/repo/../api/v1/search", false},
		{"/a//b", false},
	}
	for _, method := range []string{"PUT", "POST", "GET", "DELETE", "PATCH", "HEAD"} {
		for _, p := range paths {
			req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: registry\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", method, p.path)
			c := rawConn(t, addr)
			io.WriteString(c, req)
			br := bufio.NewReader(c)
			res, err := http.ReadResponse(br, &http.Request{Method: method})
			if err != nil {
				t.Fatalf("%s %s: %v", method, p.path, err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" {
				t.Errorf("%s %s = %d (Location %q); want 400, no redirect", method, p.path, res.StatusCode, res.Header.Get("Location"))
				continue
			}
			if !p.v2 || method == "HEAD" {
				continue
			}
			var e struct {
				Errors []struct{ Code string }
			}
			if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 || e.Errors[0].Code != "NAME_INVALID" {
				t.Errorf("%s %s: body %q; want the spec's NAME_INVALID error", method, p.path, body)
			}
		}
	}
	// Canonical paths still work, trailing slashes included.
	for _, p := range []string{"/v2/", "/v2/_catalog"} {
		res, _ := exchange(t, addr, "GET "+p+" HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n\r\n")
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", p, res.StatusCode)
		}
	}
}

func TestCanonicalPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/v2/": true, "/v2": true, "/v2/a/b/blobs/uploads/": true, "/v2/a.b/c..d/manifests/x": true,
		"": false, "v2/": false, "*": false, "//": false, "/v2//": false, "/v2/./": false, "/v2/a/..": false, "/.": false,
	} {
		if got := canonicalPath(p); got != want {
			t.Errorf("canonicalPath(%q) = %v, want %v", p, got, want)
		}
	}
}

// Header blocks past http.max_header_bytes get 431 (Go's default would
// accept a megabyte).
func TestHeaderLimits(t *testing.T) {
	_, addr := startServer(t, nil)
	big := func(header string) *http.Response {
		c := rawConn(t, addr)
		go func() {
			// The server answers and closes before reading all of it:
			// write errors are expected.
			_, _ = io.WriteString(c, "GET /v2/ HTTP/1.1\r\nHost: registry\r\n"+header+"\r\n")
		}()
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("read response: %v", err)
		}
		res.Body.Close()
		return res
	}
	if res := big("Authorization: Bearer " + strings.Repeat("a", 1<<20) + "\r\n"); res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("1 MiB Authorization header: %d, want 431", res.StatusCode)
	}
	var many strings.Builder
	for i := range 10_000 {
		fmt.Fprintf(&many, "X-H%d: v\r\n", i)
	}
	if res := big(many.String()); res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("10,000 headers: %d, want 431", res.StatusCode)
	}
	// A header block within the limit is served.
	if res := big("Authorization: Basic " + strings.Repeat("a", 16<<10) + "\r\nConnection: close\r\n"); res.StatusCode == http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("16 KiB Authorization header refused: %d", res.StatusCode)
	}
}

// A request with both Content-Length and Transfer-Encoding is refused
// with 400 and its connection closed, so what follows its body is never
// answered as a second request (RFC 9112 §6.1).
func TestRequestSmugglingRefused(t *testing.T) {
	_, addr := startServer(t, nil)
	smuggled := "GET /v2/_catalog HTTP/1.1\r\nHost: registry\r\n\r\n"
	for name, head := range map[string]string{
		"CL then TE":         "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
		"TE then CL":         "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
		"mixed case":         "transfer-encoding: Chunked\r\ncontent-length: 5\r\n",
		"CL 0 and TE":        "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
		"identical CL twice": "Content-Length: 5\r\nContent-Length: 5\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			body := "0\r\n\r\n"
			c := rawConn(t, addr)
			io.WriteString(c, "POST /v2/r/blobs/uploads/ HTTP/1.1\r\nHost: registry\r\n"+head+"\r\n"+body+smuggled)
			br := bufio.NewReader(c)
			res, _ := readResponse(t, br)
			if res.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400", res.StatusCode)
			}
			if !res.Close {
				t.Errorf("response does not say Connection: close")
			}
			rest, _ := io.ReadAll(br)
			if bytes.Contains(rest, []byte("HTTP/1.1")) {
				t.Errorf("the smuggled request was answered: %q", rest)
			}
		})
	}
	// Review findings: a whitespace-only folded line must not end the
	// header block in the framer's eyes (it would hide the CL+TE pair and
	// shift every later verdict); folded lines and HTTP/1.0 with
	// Transfer-Encoding are refused and closed.
	for name, req := range map[string]string{
		"space-only fold hides CL+TE": "POST /v2/r/blobs/uploads/ HTTP/1.1\r\nHost: registry\r\nFoo: bar\r\n \r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"tab-only fold":               "GET /v2/ HTTP/1.1\r\nHost: registry\r\nFoo: bar\r\n\t\r\nX: y\r\n\r\n",
		"folded value":                "GET /v2/ HTTP/1.1\r\nHost: registry\r\nFoo: bar\r\n  baz\r\n\r\n",
		"HTTP/1.0 with TE":            "POST /v2/r/blobs/uploads/ HTTP/1.0\r\nHost: registry\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := rawConn(t, addr)
			io.WriteString(c, req+smuggled)
			br := bufio.NewReader(c)
			res, _ := readResponse(t, br)
			if res.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400", res.StatusCode)
			}
			rest, _ := io.ReadAll(br)
			if bytes.Contains(rest, []byte("HTTP/1.1")) {
				t.Errorf("the smuggled request was answered: %q", rest)
			}
		})
	}
	// What net/http already refuses, and closes.
	for name, tc := range map[string]struct {
		head string
		want int
	}{
		"conflicting CL": {"Content-Length: 5\r\nContent-Length: 6\r\n", 400},
		"TE gzip":        {"Transfer-Encoding: gzip\r\n", 501},
		"TE list":        {"Transfer-Encoding: gzip, chunked\r\n", 501},
		"two TE fields":  {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 501},
	} {
		t.Run(name, func(t *testing.T) {
			c := rawConn(t, addr)
			io.WriteString(c, "POST /v2/r/blobs/uploads/ HTTP/1.1\r\nHost: registry\r\n"+tc.head+"\r\n0\r\n\r\n"+smuggled)
			br := bufio.NewReader(c)
			res, _ := readResponse(t, br)
			if res.StatusCode != tc.want {
				t.Errorf("status %d, want %d", res.StatusCode, tc.want)
			}
			rest, _ := io.ReadAll(br)
			if bytes.Contains(rest, []byte("HTTP/1.1")) {
				t.Errorf("the smuggled request was answered: %q", rest)
			}
		})
	}
}

// Unambiguous pipelined requests (a chunked body, a sized body) are all
// answered on one connection: the framer stays in step with net/http.
func TestPipelinedRequestsServed(t *testing.T) {
	_, addr := startServer(t, nil)
	c := rawConn(t, addr)
	var req strings.Builder
	chunked := "POST /v2/r/blobs/uploads/ HTTP/1.1\r\nHost: registry\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n"
	sized := "POST /v2/r/blobs/uploads/ HTTP/1.1\r\nHost: registry\r\nContent-Length: 7\r\n\r\nGET / x"
	get := "GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n"
	for range 3 {
		req.WriteString(chunked)
		req.WriteString(get)
		req.WriteString(sized)
	}
	req.WriteString("GET /v2/ HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n\r\n")
	go io.WriteString(c, req.String())
	br := bufio.NewReader(c)
	for i := range 10 {
		res, body := readResponse(t, br)
		if res.StatusCode >= 400 {
			t.Fatalf("response %d: %d %s", i, res.StatusCode, body)
		}
	}
}

// A body trickled far below http.min_body_rate is cut: the read fails and
// the request ends with an error (or the connection closes).
func TestSlowUploadCut(t *testing.T) {
	_, addr := startServer(t, func(c *config.Config) {
		c.HTTP.MinBodyRate = 1024
		c.HTTP.BodyRateWindow = 300 * time.Millisecond
	})
	res, _ := exchange(t, addr, "POST /v2/r/blobs/uploads/ HTTP/1.1\r\nHost: registry\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("start upload: %d %q", res.StatusCode, loc)
	}
	c := rawConn(t, addr)
	io.WriteString(c, "PATCH "+loc+" HTTP/1.1\r\nHost: registry\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := c.Write([]byte{'x'}); err != nil {
				return
			}
		}
	}()
	// Generous: the server must end the request long before the 100,000
	// bytes trickle in (over two hours at this rate).
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	res2, err := http.ReadResponse(bufio.NewReader(c), nil)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatal("a trickling upload was not cut within 30s")
	case err == nil && res2.StatusCode < 400:
		t.Fatalf("trickling upload answered %d", res2.StatusCode)
	}
	// err != nil (closed) or an error status: cut.
}

// pushBlob uploads data monolithically to repo.
func pushBlob(t *testing.T, addr, repo string, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	req, _ := http.NewRequest("POST", "http://"+addr+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), bytes.NewReader(data))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("push blob: %d", res.StatusCode)
	}
	return d
}

// A download read slowly but steadily is never cut, though it lasts many
// stall timeouts; one whose client stops reading is.
func TestDownloadWriteStall(t *testing.T) {
	const stall = 2 * time.Second
	_, addr := startServer(t, func(c *config.Config) { c.HTTP.WriteStallTimeout = stall })
	data := make([]byte, 24<<20)
	rand.Read(data)
	d := pushBlob(t, addr, "r", data)
	get := "GET /v2/r/blobs/" + d.String() + " HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n\r\n"

	t.Run("slow but moving", func(t *testing.T) {
		c := rawConn(t, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(64 << 10)
		}
		io.WriteString(c, get)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET blob: %v %v", res, err)
		}
		// About 6 MiB/s: the whole blob takes a few stall timeouts. Paced
		// by the clock, so sleeps that oversleep on a loaded machine are
		// made up and the pace stays well above what the server cuts.
		const rate = 6 << 20 // bytes/s
		h := digest.Canonical.Digester()
		buf := make([]byte, 64<<10)
		var n int64
		start := time.Now()
		for {
			k, err := res.Body.Read(buf)
			h.Hash().Write(buf[:k])
			n += int64(k)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("download cut after %d of %d bytes: %v", n, len(data), err)
			}
			time.Sleep(time.Until(start.Add(time.Duration(n) * time.Second / rate)))
		}
		if h.Digest() != d {
			t.Fatalf("downloaded %d bytes, digest %s; want %s", n, h.Digest(), d)
		}
	})

	t.Run("stalled reader", func(t *testing.T) {
		c := rawConn(t, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(64 << 10)
		}
		io.WriteString(c, get)
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET blob: %v %v", res, err)
		}
		// Stop reading for several stall timeouts: the server gives up.
		time.Sleep(4 * stall)
		n, err := io.Copy(io.Discard, res.Body)
		if err == nil && n+int64(br.Buffered()) >= int64(len(data)) {
			t.Fatalf("a stalled download was not cut: got all %d bytes", n)
		}
	})
}

func TestFramerFuzzSeeds(t *testing.T) {
	// A stream split at every byte gives the verdicts of the whole.
	stream := "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" +
		"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
		"GET / HTTP/1.0\r\nContent-Length: 2\r\n\r\nab" +
		"GET / HTTP/1.1\r\n\r\n"
	want := []string{"", "both Content-Length and Transfer-Encoding (RFC 9112 §6.1)", "", ""}
	var f h1Framer
	for i := 0; i < len(stream); i++ {
		f.feed([]byte{stream[i]})
	}
	if fmt.Sprint(f.verdicts) != fmt.Sprint(want) || f.broken != "" {
		t.Fatalf("verdicts %q (broken %q), want %q", f.verdicts, f.broken, want)
	}
}

// FuzzFramer feeds arbitrary streams in arbitrary splits: the framer never
// panics and gives the same verdicts however the bytes arrive.
func FuzzFramer(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"), uint8(3))
	f.Add([]byte("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"), uint8(1))
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		var whole, parts h1Framer
		whole.feed(data)
		step := int(split%16) + 1
		for i := 0; i < len(data); i += step {
			parts.feed(data[i:min(i+step, len(data))])
		}
		if fmt.Sprint(whole.verdicts) != fmt.Sprint(parts.verdicts) || whole.broken != parts.broken {
			t.Fatalf("whole %q/%q, in parts %q/%q", whole.verdicts, whole.broken, parts.verdicts, parts.broken)
		}
	})
}

// sliceRecorder is a ResponseWriter whose ReadFrom records the size of
// each slice it is handed, taking delay per slice.
type sliceRecorder struct {
	http.ResponseWriter
	delay  time.Duration
	slices []int64
}

func (r *sliceRecorder) ReadFrom(src io.Reader) (int64, error) {
	lr := src.(*io.LimitedReader)
	r.slices = append(r.slices, lr.N)
	time.Sleep(r.delay)
	return io.Copy(io.Discard, lr)
}

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestSendfileSlices: a client that takes each slice quickly is handed
// slices twice as large each time, up to maxReadFromSlice; one that takes
// more than a sixteenth of the stall timeout per slice keeps the smallest;
// every byte is sent either way and the caller's LimitedReader is left
// with what was not.
func TestSendfileSlices(t *testing.T) {
	const size = 20 << 20
	fast := &sliceRecorder{ResponseWriter: httptest.NewRecorder()}
	sw := &stallWriter{ResponseWriter: fast, rc: http.NewResponseController(fast), stall: time.Minute}
	src := &io.LimitedReader{R: zeros{}, N: size}
	if n, err := sw.ReadFrom(src); n != size || err != nil || src.N != 0 {
		t.Fatalf("ReadFrom = %d, %v (left %d), want %d", n, err, src.N, size)
	}
	want := []int64{128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20, 4 << 20, 4 << 20, 4 << 20}
	var sent int64
	for _, k := range want {
		sent += k
	}
	want = append(want, size-sent)
	if !slices.Equal(fast.slices, want) {
		t.Errorf("slices to a fast client = %v, want %v", fast.slices, want)
	}

	slow := &sliceRecorder{ResponseWriter: httptest.NewRecorder(), delay: 15 * time.Millisecond}
	sw = &stallWriter{ResponseWriter: slow, rc: http.NewResponseController(slow), stall: 160 * time.Millisecond}
	src = &io.LimitedReader{R: zeros{}, N: 1 << 20}
	if n, err := sw.ReadFrom(src); n != 1<<20 || err != nil {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	for _, k := range slow.slices {
		if k != readFromSlice {
			t.Fatalf("slices to a slow client = %v, want all %d", slow.slices, readFromSlice)
		}
	}
}
