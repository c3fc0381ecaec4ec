package s3_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/blob/s3"
	"github.com/berth-dev/berth/internal/testenv/s3test"
	"github.com/berth-dev/berth/meta/sqlite"
	"github.com/berth-dev/berth/registry"
)

// faultProxy stands between the driver and MinIO and answers the
// requests a rule matches with an S3 error (or cuts them), as a sick S3
// service would. The Host header is kept, so signatures still verify.
type faultProxy struct {
	*httptest.Server
	mu    sync.Mutex
	rules []*rule
	hits  map[string]int // requests seen, by "METHOD kind"
}

type rule struct {
	match  func(r *http.Request) bool
	status int    // an S3 error answer; 0: cut the response after a few bytes
	code   string // the S3 error code of the answer
	times  int    // how many requests to fail (-1: all)
}

func newFaultProxy(t *testing.T, endpoint string) *faultProxy {
	t.Helper()
	target, _ := url.Parse(endpoint)
	p := &faultProxy{hits: map[string]int{}}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
	}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.hits[kind(r)]++
		var hit *rule
		for _, ru := range p.rules {
			if ru.times != 0 && ru.match(r) {
				hit = ru
				if ru.times > 0 {
					ru.times--
				}
				break
			}
		}
		p.mu.Unlock()
		switch {
		case hit == nil:
			rp.ServeHTTP(w, r)
		case hit.status == 0: // cut: forward, then drop the connection mid-body
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes()[:min(rec.Body.Len(), 100)])
			panic(http.ErrAbortHandler)
		default:
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(hit.status)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected</Message></Error>`, hit.code)
		}
	}))
	t.Cleanup(p.Close)
	return p
}

// kind names a request: "PUT part", "PUT object", "POST complete", …
func kind(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case q.Has("partNumber"):
		return r.Method + " part"
	case q.Has("uploads"):
		return r.Method + " create"
	case q.Has("uploadId"):
		return r.Method + " complete"
	}
	return r.Method + " object"
}

func (p *faultProxy) fail(match func(*http.Request) bool, status int, code string, times int) {
	p.mu.Lock()
	p.rules = append(p.rules, &rule{match: match, status: status, code: code, times: times})
	p.mu.Unlock()
}

// unspent counts the failures rules still have to give (the -1 rules
// excepted).
func (p *faultProxy) unspent() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.rules {
		n += max(r.times, 0)
	}
	return n
}

func (p *faultProxy) clear() {
	p.mu.Lock()
	p.rules = nil
	p.mu.Unlock()
}

func isPart(r *http.Request) bool {
	return r.Method == http.MethodPut && r.URL.Query().Has("partNumber")
}

func storeVia(t *testing.T, endpoint string, srv s3test.Server, bucket string) *s3.Store {
	t.Helper()
	s, err := s3.New(t.Context(), s3.Options{Endpoint: endpoint, Region: "us-east-1", Bucket: bucket,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true, PartSize: 5 << 20}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomData(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func readAll(t *testing.T, s blob.Store, d digest.Digest) []byte {
	t.Helper()
	rc, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRetriedFaults: 503 SlowDown and 500 answers, two each, are retried
// by the driver; the blob is whole.
func TestRetriedFaults(t *testing.T) {
	srv, bucket := s3test.Bucket(t)
	p := newFaultProxy(t, srv.Endpoint)
	s := storeVia(t, p.URL, srv, bucket)
	p.fail(isPart, http.StatusServiceUnavailable, "SlowDown", 2)
	p.fail(func(r *http.Request) bool { return r.Method == http.MethodPost }, http.StatusInternalServerError, "InternalError", 2)

	data := randomData(12 << 20)
	w, err := s.Upload(t.Context(), "retried", blob.UploadState{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("Write through two SlowDowns: %v", err)
	}
	d := digest.FromBytes(data)
	if _, err := w.Commit(t.Context(), d, int64(len(data))); err != nil {
		t.Fatalf("Commit through two 500s: %v", err)
	}
	if got := readAll(t, s, d); !bytes.Equal(got, data) {
		t.Fatal("the blob read back differs")
	}
	if n := p.unspent(); n != 0 {
		t.Errorf("%d injected failures were never met: the test did not exercise them", n)
	}
}

// TestFailedPartResumes: a part that keeps failing fails the write; no
// blob is visible; the upload continues from its last state once S3 is
// well again, and the blob is whole.
func TestFailedPartResumes(t *testing.T) {
	srv, bucket := s3test.Bucket(t)
	p := newFaultProxy(t, srv.Endpoint)
	s := storeVia(t, p.URL, srv, bucket)
	data := randomData(13 << 20)
	d := digest.FromBytes(data)

	w, err := s.Upload(t.Context(), "sick", blob.UploadState{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:6<<20]); err != nil { // one part sent, 1 MiB buffered
		t.Fatal(err)
	}
	st, err := w.State()
	if err != nil {
		t.Fatal(err)
	}
	p.fail(isPart, http.StatusInternalServerError, "InternalError", -1)
	if _, err := w.Write(data[6<<20:]); err == nil {
		t.Fatal("Write with every part failing succeeded")
	}
	if _, err := w.State(); err == nil {
		t.Error("State after a failed part succeeded")
	}
	w.Close()
	if _, err := s.Stat(t.Context(), d); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat after a failed upload = %v, want ErrNotFound", err)
	}

	p.clear()
	w, err = s.Upload(t.Context(), "sick", st)
	if err != nil {
		t.Fatalf("resume after the fault: %v", err)
	}
	if _, err := w.Write(data[6<<20:]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(t.Context(), d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, d); !bytes.Equal(got, data) {
		t.Fatal("the blob read back differs")
	}
}

// TestCutResponse: a GET cut short is an error to the reader, never a
// short blob.
func TestCutResponse(t *testing.T) {
	srv, bucket := s3test.Bucket(t)
	p := newFaultProxy(t, srv.Endpoint)
	s := storeVia(t, p.URL, srv, bucket)
	data := randomData(1 << 20)
	w, err := s.Upload(t.Context(), "cut", blob.UploadState{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	d := digest.FromBytes(data)
	if _, err := w.Commit(t.Context(), d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	p.fail(func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/")
	}, 0, "", -1)
	rc, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err == nil {
		t.Fatalf("read %d of %d bytes of a cut response without an error", len(got), len(data))
	}
}

// TestChunkedAcrossInstances: a chunked upload of several parts whose
// chunks go to three instances (three replicas), each resuming from the
// state the previous one returned, commits a whole blob.
func TestChunkedAcrossInstances(t *testing.T) {
	srv, bucket := s3test.Bucket(t)
	stores := []*s3.Store{storeVia(t, srv.Endpoint, srv, bucket), storeVia(t, srv.Endpoint, srv, bucket), storeVia(t, srv.Endpoint, srv, bucket)}
	data := randomData(17<<20 + 12345)
	cuts := []int{0, 3 << 20, 9<<20 + 7, 16 << 20, len(data)}
	var st blob.UploadState
	for i := 1; i < len(cuts); i++ {
		w, err := stores[i%3].Upload(t.Context(), "chunked", st)
		if err != nil {
			t.Fatalf("chunk %d on instance %d: %v", i, i%3, err)
		}
		if _, err := w.Write(data[cuts[i-1]:cuts[i]]); err != nil {
			t.Fatal(err)
		}
		if i == len(cuts)-1 {
			d := digest.FromBytes(data)
			if _, err := w.Commit(t.Context(), d, int64(len(data))); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, stores[0], d); !bytes.Equal(got, data) {
				t.Fatal("the blob read back differs")
			}
			return
		}
		if st, err = w.State(); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
}

// TestRegistryOnSickS3: with S3 failing every request, a push is answered
// with a 5xx in the spec's error format (a client retries it), and once S3
// is well the same push succeeds.
func TestRegistryOnSickS3(t *testing.T) {
	srv, bucket := s3test.Bucket(t)
	p := newFaultProxy(t, srv.Endpoint)
	blobs := storeVia(t, p.URL, srv, bucket)
	md, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "meta.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	reg := registry.New(blobs, md, registry.Options{}, slog.New(slog.DiscardHandler))
	hs := httptest.NewServer(reg)
	defer hs.Close()

	data := randomData(100 << 10)
	sum := sha256.Sum256(data)
	d := fmt.Sprintf("sha256:%x", sum)
	push := func() *http.Response {
		resp, err := http.Post(hs.URL+"/v2/app/blobs/uploads/?digest="+d, "application/octet-stream", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	p.fail(func(*http.Request) bool { return true }, http.StatusServiceUnavailable, "SlowDown", -1)
	resp := push()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if resp.StatusCode < 500 || json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 || e.Errors[0].Code == "" {
		t.Fatalf("push on a failing S3: %s %s, want a 5xx with a spec error body", resp.Status, body)
	}
	p.clear()
	resp = push()
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push once S3 is well: %s", resp.Status)
	}
	head, err := http.Head(hs.URL + "/v2/app/blobs/" + d)
	if err != nil || head.StatusCode != http.StatusOK {
		t.Fatalf("HEAD after the push: %v %v", head, err)
	}
}
