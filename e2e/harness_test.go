// Package e2e runs a real `berth serve` and drives it with real clients: the
// OCI conformance suite, crane, skopeo, oras, regctl and podman. It has test
// files only; it imports none of Berth's code (test helpers only: fixtures,
// the throwaway PostgreSQL and MinIO of internal/testenv) and talks to it
// over HTTP.
//
// The tools come from PATH or from <repo>/.tools/bin (scripts/install-deps.sh
// puts them there). A missing tool skips its test locally; with CI=true or
// BERTH_E2E=1 it fails the test instead, so CI cannot pass by skipping.
//
// Logs and reports are written under <repo>/test-output/.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testenv/pgtest"
	"github.com/berth-dev/berth/internal/testenv/s3test"
)

const (
	// startTimeout bounds how long berth may take to write its address file
	// and answer GET /v2/.
	startTimeout = 60 * time.Second
	// stopTimeout bounds how long berth may take to exit after SIGTERM.
	stopTimeout = 30 * time.Second
	// buildTimeout bounds `go build ./cmd/berth` (a cold build with -race
	// and the SQLite driver takes a few minutes on 2 cores).
	buildTimeout = 10 * time.Minute
	// toolTimeout bounds one client command.
	toolTimeout = 3 * time.Minute
)

// binaryOverride names an already-built berth binary to test instead of
// building ./cmd/berth (for testing a release build).
const binaryOverride = "BERTH_E2E_BINARY"

var (
	buildOnce sync.Once
	berthBin  string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	// The replica tests' PostgreSQL and MinIO, if they started them.
	pgtest.Stop()
	s3test.Stop()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// strict reports whether a missing tool must fail the test rather than skip
// it: in CI, or when BERTH_E2E=1 (scripts/test.sh sets it).
func strict() bool {
	return os.Getenv("CI") == "true" || os.Getenv("BERTH_E2E") == "1"
}

// repoRoot is the directory holding the module's go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// outputDir returns <repo>/test-output/<sub...>, created.
func outputDir(t testing.TB, sub ...string) string {
	t.Helper()
	dir := filepath.Join(append([]string{repoRoot(t), "test-output"}, sub...)...)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// berthBinary builds ./cmd/berth once per test binary (with -race when the
// tests run with -race, so the server is race-checked under real clients).
func berthBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(binaryOverride); p != "" {
		return p
	}
	buildOnce.Do(func() {
		root := repoRoot(t)
		buildDir, buildErr = os.MkdirTemp("", "berth-e2e-bin-")
		if buildErr != nil {
			return
		}
		berthBin = filepath.Join(buildDir, "berth")
		args := []string{"build", "-o", berthBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/berth")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		cmd.Env = cleanEnv()
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		t.Logf("built berth (race=%v) in %s", raceEnabled, time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatalf("building berth: %v", buildErr)
	}
	return berthBin
}

// server is one running `berth serve`.
type server struct {
	Addr    string
	LogPath string

	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
	logFile  *os.File
}

var logSeq struct {
	sync.Mutex
	n map[string]int
}

// logName gives each server of a test its own log file name.
func logName(t testing.TB) string {
	logSeq.Lock()
	defer logSeq.Unlock()
	if logSeq.n == nil {
		logSeq.n = map[string]int{}
	}
	name := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_")
	logSeq.n[name]++
	return fmt.Sprintf("%s-%d.log", name, logSeq.n[name])
}

// startBerth runs `berth serve` on a free loopback port with a fresh data
// directory, waits until it answers GET /v2/ with 200, and returns its
// "host:port" and a stop function. stop sends SIGTERM and fails the test
// unless berth exits 0 within stopTimeout; it also runs at cleanup, and
// calling it more than once is fine.
func startBerth(t testing.TB) (addr string, stop func()) {
	t.Helper()
	s := startServer(t)
	return s.Addr, func() { s.Stop(t) }
}

// startServer starts berth like startBerth, on a fresh data directory;
// env adds BERTH_* settings.
func startServer(t testing.TB, env ...string) *server {
	t.Helper()
	return startServerOn(t, t.TempDir(), env...)
}

// Stop sends SIGTERM and checks that berth exits 0 within stopTimeout, and
// that the race detector (if on) reported nothing.
func (s *server) Stop(t testing.TB) {
	t.Helper()
	s.stopOnce.Do(func() {
		defer s.logFile.Close()
		select {
		case <-s.done:
			t.Errorf("berth exited before it was stopped: %v\n%s", s.waitErr, tailFile(s.LogPath, 4000))
			return
		default:
		}
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("SIGTERM to berth: %v", err)
		}
		select {
		case <-s.done:
		case <-time.After(stopTimeout):
			s.cmd.Process.Kill()
			<-s.done
			t.Errorf("berth did not exit within %s of SIGTERM\n%s", stopTimeout, tailFile(s.LogPath, 4000))
			return
		}
		if s.waitErr != nil {
			t.Errorf("berth did not exit cleanly after SIGTERM: %v\n%s", s.waitErr, tailFile(s.LogPath, 4000))
		}
		if b, err := os.ReadFile(s.LogPath); err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			t.Errorf("the race detector reported a data race in berth; see %s", s.LogPath)
		}
	})
}

// tailFile returns the last n bytes of a file, for failure messages.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	off := int64(0)
	if fi.Size() > n {
		off = fi.Size() - n
	}
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Sprintf("(reading log: %v)", err)
	}
	return fmt.Sprintf("--- %s (last %d bytes) ---\n%s", path, len(b), b)
}

// cleanEnv is the environment for child processes: no proxies, since
// everything runs on loopback.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy":
			continue
		}
		// The tests' own switches (BERTH_E2E, BERTH_CRASH_SEED, …) are not
		// berth configuration: berth would warn about them (it ignores
		// BERTH_* variables that name no key), and a setting left in the
		// parent's environment would change every server. Tests pass the
		// settings they mean explicitly (serverOptions.Env).
		if strings.HasPrefix(k, "BERTH_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// toolEnv is cleanEnv without the variables that point clients at config
// or credentials outside their private HOME.
func toolEnv() []string {
	var env []string
	for _, kv := range cleanEnv() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "REGCTL_CONFIG", "XDG_CONFIG_HOME", "XDG_DATA_HOME":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// httpClient talks to berth directly, bypassing any proxy.
func httpClient() *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: false},
	}
}

// findTool returns the path of a client tool: <repo>/.tools/bin first (the
// pinned version), then PATH. A missing tool skips the test, or fails it
// when strict().
func findTool(t testing.TB, name string) string {
	t.Helper()
	pinned := filepath.Join(repoRoot(t), ".tools", "bin", name)
	if fi, err := os.Stat(pinned); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return pinned
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	how := "run ./scripts/install-deps.sh (it installs every tool the e2e tests use)"
	if strict() {
		t.Fatalf("%s not found in .tools/bin or on PATH; %s", name, how)
	}
	t.Skipf("%s not found in .tools/bin or on PATH; %s (set BERTH_E2E=1 to make this a failure)", name, how)
	return ""
}

// toolRunner runs client commands with a private HOME, so client config
// (regctl's registry list, auth files) neither leaks in nor out.
type toolRunner struct {
	t     testing.TB
	home  string
	paths map[string]string
}

func newToolRunner(t testing.TB) *toolRunner {
	t.Helper()
	return &toolRunner{t: t, home: t.TempDir(), paths: map[string]string{}}
}

// need resolves each tool now, so a missing one skips or fails up front.
func (r *toolRunner) need(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, ok := r.paths[n]; !ok {
			r.paths[n] = findTool(t, n)
		}
	}
}

type result struct {
	Stdout, Stderr []byte
	Err            error
	Cmdline        string
}

func (res result) String() string {
	return fmt.Sprintf("$ %s\nerror: %v\nstdout:\n%s\nstderr:\n%s", res.Cmdline, res.Err, clip(res.Stdout, 6000), clip(res.Stderr, 6000))
}

func clip(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return fmt.Sprintf("%s\n... (%d bytes cut) ...\n%s", b[:n/2], len(b)-n, b[len(b)-n/2:])
}

// try runs a tool and returns what happened, whatever the exit status.
func (r *toolRunner) try(t testing.TB, dir, name string, args ...string) result {
	t.Helper()
	return r.tryEnv(t, dir, nil, name, args...)
}

// tryEnv is try with more environment variables.
func (r *toolRunner) tryEnv(t testing.TB, dir string, env []string, name string, args ...string) result {
	t.Helper()
	r.need(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.paths[name], args...)
	cmd.Env = append(append(toolEnv(), "HOME="+r.home), env...)
	cmd.Dir = dir
	if cmd.Dir == "" {
		cmd.Dir = r.home
	}
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (timed out after %s)", err, toolTimeout)
	}
	return result{
		Stdout:  stdout.Bytes(),
		Stderr:  stderr.Bytes(),
		Err:     err,
		Cmdline: name + " " + strings.Join(args, " "),
	}
}

// run runs a tool and fails the test unless it exits 0.
func (r *toolRunner) run(t testing.TB, name string, args ...string) result {
	t.Helper()
	res := r.try(t, "", name, args...)
	if res.Err != nil {
		t.Fatalf("command failed:\n%s", res)
	}
	return res
}

// runIn is run with a working directory.
func (r *toolRunner) runIn(t testing.TB, dir, name string, args ...string) result {
	t.Helper()
	res := r.try(t, dir, name, args...)
	if res.Err != nil {
		t.Fatalf("command failed:\n%s", res)
	}
	return res
}

// mustFail runs a tool that is expected to fail, and fails the test if it
// succeeds. It returns the combined output for further checks.
func (r *toolRunner) mustFail(t testing.TB, name string, args ...string) string {
	t.Helper()
	res := r.try(t, "", name, args...)
	if res.Err == nil {
		t.Fatalf("command succeeded but should have failed:\n%s", res)
	}
	var ee *exec.ExitError
	if !errors.As(res.Err, &ee) {
		t.Fatalf("command did not run:\n%s", res)
	}
	return string(res.Stdout) + string(res.Stderr)
}

// testSeed returns a random seed for a randomised test, or the one in the
// environment variable env, and logs how to replay the run.
func testSeed(t testing.TB, env string) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(env); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		seed = n
	}
	t.Logf("seed %d (%s=%d replays it)", seed, env, seed)
	return seed
}
