package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// This file holds what the storage tests (ENOSPC, kill -9) need beyond
// harness_test.go: a berth on a data directory the test chooses (to mount a
// tmpfs there, or to restart on the same data), SIGKILL, `berth fsck`, and
// a small push/pull client that returns errors instead of failing the test,
// so client goroutines can retry.

// startServerOn starts `berth serve` on data like startServer does, on a
// new loopback port. env adds BERTH_* settings.
func startServerOn(t testing.TB, data string, env ...string) *server {
	t.Helper()
	return startServerWith(t, serverOptions{Data: data, Env: env})
}

// serverOptions are the settings of startServerWith.
type serverOptions struct {
	// Data is the data directory (a fresh one when empty).
	Data string
	// Config is the YAML configuration (none when empty).
	Config string
	// Env adds BERTH_* settings.
	Env []string
	// HTTPS: berth serves TLS; Client (trusting its CA) is used to wait
	// for it.
	HTTPS  bool
	Client *http.Client
}

// startServerWith starts `berth serve` on a new loopback port with opts,
// and waits until GET /v2/ answers 200 (or 401, when authentication is on).
func startServerWith(t testing.TB, opts serverOptions) *server {
	t.Helper()
	data := opts.Data
	if data == "" {
		data = t.TempDir()
	}
	env := opts.Env
	bin := berthBinary(t)
	addrFile := filepath.Join(t.TempDir(), "addr")
	logPath := filepath.Join(outputDir(t, "e2e", "logs"), logName(t))
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--addr-file", addrFile}
	if opts.Config != "" {
		cfgPath := filepath.Join(t.TempDir(), "berth.yaml")
		if err := os.WriteFile(cfgPath, []byte(opts.Config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", cfgPath)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = data
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting berth: %v", err)
	}
	s := &server{cmd: cmd, done: make(chan struct{}), LogPath: logPath, logFile: logFile}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.Stop(t) })

	deadline := time.Now().Add(startTimeout)
	for s.Addr == "" {
		if b, err := os.ReadFile(addrFile); err == nil {
			a := strings.TrimSpace(string(b))
			if host, port, err := net.SplitHostPort(a); err == nil && host != "" && port != "" && port != "0" {
				s.Addr = a
				break
			}
		}
		select {
		case <-s.done:
			t.Fatalf("berth exited before writing %s: %v\n%s", addrFile, s.waitErr, tailFile(logPath, 4000))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth did not write its address within %s\n%s", startTimeout, tailFile(logPath, 4000))
		}
	}
	client, scheme := httpClient(), "http"
	if opts.Client != nil {
		client = opts.Client
	}
	if opts.HTTPS {
		scheme = "https"
	}
	for {
		resp, err := client.Get(scheme + "://" + s.Addr + "/v2/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				break
			}
		}
		select {
		case <-s.done:
			t.Fatalf("berth exited while waiting for GET /v2/: %v\n%s", s.waitErr, tailFile(logPath, 4000))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth at %s did not answer GET /v2/ within %s\n%s", s.Addr, startTimeout, tailFile(logPath, 4000))
		}
	}
	t.Logf("berth serving on %s, data %s (log %s)", s.Addr, data, logPath)
	return s
}

// Kill sends SIGKILL and waits for the process to be gone. A later Stop is
// a no-op.
func (s *server) Kill(t testing.TB) {
	t.Helper()
	s.stopOnce.Do(func() {
		defer s.logFile.Close()
		if err := s.cmd.Process.Kill(); err != nil {
			t.Errorf("SIGKILL to berth: %v", err)
		}
		<-s.done
		if b, err := os.ReadFile(s.LogPath); err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			t.Errorf("the race detector reported a data race in berth; see %s", s.LogPath)
		}
	})
}

// runBerth runs a berth command (fsck, gc) to completion and returns its
// combined output and error.
func runBerth(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return runBerthWith(t, nil, args...)
}

// runBerthWith is runBerth with env (BERTH_* settings) added.
func runBerthWith(t testing.TB, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBinary(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// statusError is a response that was not the one expected.
type statusError struct {
	what   string
	status int
	body   []byte
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: %d %s", e.what, e.status, clip(e.body, 400))
}

// specCode returns the first error code of a spec error body, or "".
func specCode(body []byte) string {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// pusher pushes and pulls with net/http. base returns the current
// "http://host:port" (it changes when berth restarts).
type pusher struct {
	c    *http.Client
	base func() string
}

// do sends one request and reads the whole answer.
func (p *pusher) do(method, url string, body []byte, hdr ...string) (int, http.Header, []byte, error) {
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	if !strings.HasPrefix(url, "http") {
		url = p.base() + url
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.ContentLength = int64(len(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := p.c.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// expect sends a request and returns an error unless the status is want.
func (p *pusher) expect(want int, what, method, url string, body []byte, hdr ...string) (http.Header, []byte, error) {
	status, h, b, err := p.do(method, url, body, hdr...)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	if status != want {
		return h, b, &statusError{what: what, status: status, body: b}
	}
	return h, b, nil
}

// monolithic uploads data in one POST.
func (p *pusher) monolithic(repo string, data []byte) error {
	d := digest.FromBytes(data)
	_, _, err := p.expect(http.StatusCreated, "monolithic upload of "+d.String(), "POST",
		"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), data, "Content-Type", "application/octet-stream")
	return err
}

// chunked uploads data in PATCHes of chunk bytes and a closing PUT.
func (p *pusher) chunked(repo string, data []byte, chunk int) error {
	d := digest.FromBytes(data)
	h, _, err := p.expect(http.StatusAccepted, "start upload", "POST", "/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		return err
	}
	loc := h.Get("Location")
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		h, _, err = p.expect(http.StatusAccepted, "PATCH "+strconv.Itoa(off), "PATCH", p.base()+loc, data[off:end],
			"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", off, end-1))
		if err != nil {
			return err
		}
		loc = h.Get("Location")
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	_, _, err = p.expect(http.StatusCreated, "complete upload of "+d.String(), "PUT", p.base()+loc+sep+"digest="+d.String(), nil)
	return err
}

// putManifest pushes an image manifest under ref.
func (p *pusher) putManifest(repo, ref string, body []byte) error {
	_, _, err := p.expect(http.StatusCreated, "PUT manifest "+repo+":"+ref, "PUT", "/v2/"+repo+"/manifests/"+ref, body,
		"Content-Type", "application/vnd.oci.image.manifest.v1+json")
	return err
}

// testImage is an image made of blobs held in memory.
type testImage struct {
	Repo, Tag string
	Config    []byte
	Layers    [][]byte
	Manifest  []byte
}

func makeTestImage(repo, tag string, config []byte, layers ...[]byte) testImage {
	desc := func(mt string, b []byte) map[string]any {
		return map[string]any{"mediaType": mt, "digest": digest.FromBytes(b), "size": len(b)}
	}
	var ls []any
	for _, l := range layers {
		ls = append(ls, desc("application/vnd.oci.image.layer.v1.tar", l))
	}
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        desc("application/vnd.oci.image.config.v1+json", config),
		"layers":        ls,
	})
	return testImage{Repo: repo, Tag: tag, Config: config, Layers: layers, Manifest: m}
}

func (img testImage) blobs() [][]byte { return append([][]byte{img.Config}, img.Layers...) }

// verify pulls img by tag and by digest and checks every byte against its
// digest and against what was pushed.
func (p *pusher) verify(img testImage) error {
	md := digest.FromBytes(img.Manifest)
	for _, ref := range []string{img.Tag, md.String()} {
		_, b, err := p.expect(http.StatusOK, "GET manifest "+img.Repo+":"+ref, "GET", "/v2/"+img.Repo+"/manifests/"+ref, nil,
			"Accept", "application/vnd.oci.image.manifest.v1+json")
		if err != nil {
			return err
		}
		if !bytes.Equal(b, img.Manifest) {
			return fmt.Errorf("manifest %s:%s differs from what was pushed", img.Repo, ref)
		}
	}
	for _, want := range img.blobs() {
		d := digest.FromBytes(want)
		_, b, err := p.expect(http.StatusOK, "GET blob "+d.String(), "GET", "/v2/"+img.Repo+"/blobs/"+d.String(), nil)
		if err != nil {
			return err
		}
		if got := digest.FromBytes(b); got != d || !bytes.Equal(b, want) {
			return fmt.Errorf("blob %s of %s:%s reads back as %s (%d bytes)", d, img.Repo, img.Tag, got, len(b))
		}
	}
	return nil
}
