package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// flatpakTimeout bounds one flatpak command (an install of the ~1 MB
// fixtures takes about a second).
const flatpakTimeout = 2 * time.Minute

// flatpakFixture is one entry of the fixtures script's fixtures.json.
type flatpakFixture struct {
	Name           string   `json:"name"`
	Ref            string   `json:"ref"`
	Path           string   `json:"path"`
	Repository     string   `json:"repository"`
	Tag            string   `json:"tag"`
	ManifestDigest string   `json:"manifest_digest"`
	LayerDigests   []string `json:"layer_digests"`
}

// makeFlatpakFixtures runs ../shared/fixtures/flatpak/make-fixtures.sh
// into <repo>/.tools/fixtures/flatpak (it is idempotent: a second run
// does nothing) and returns the directory and the fixtures by name.
func makeFlatpakFixtures(t *testing.T) (string, map[string]flatpakFixture) {
	t.Helper()
	script := filepath.Join(repoRoot(t), "..", "shared", "fixtures", "flatpak", "make-fixtures.sh")
	if _, err := os.Stat(script); err != nil {
		if strict() {
			t.Fatalf("flatpak fixtures script: %v", err)
		}
		t.Skipf("flatpak fixtures script: %v", err)
	}
	dir := filepath.Join(repoRoot(t), ".tools", "fixtures", "flatpak")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "--quiet", dir)
	cmd.Env = cleanEnv()
	cmd.WaitDelay = 10 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "fixtures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fj struct {
		Fixtures []flatpakFixture `json:"fixtures"`
	}
	if err := json.Unmarshal(b, &fj); err != nil {
		t.Fatalf("fixtures.json: %v", err)
	}
	byName := map[string]flatpakFixture{}
	for _, f := range fj.Fixtures {
		byName[f.Name] = f
	}
	for _, n := range []string{"org.berth.Platform", "org.berth.Bare", "org.berth.Hello", "org.berth.Hello-v2"} {
		if _, ok := byName[n]; !ok {
			t.Fatalf("fixtures.json has no %s", n)
		}
	}
	return dir, byName
}

// flatpakEnv is what the flatpak client tests share: the tools, the
// fixtures, and pushing a fixture to a server.
type flatpakEnv struct {
	tools                  *toolRunner
	flatpakBin, dbusDaemon string
	fixtures               string
	fx                     map[string]flatpakFixture
}

func newFlatpakEnv(t *testing.T) *flatpakEnv {
	t.Helper()
	e := &flatpakEnv{tools: newToolRunner(t)}
	e.tools.need(t, "skopeo")
	e.flatpakBin = findTool(t, "flatpak")
	e.dbusDaemon = findTool(t, "dbus-daemon")
	e.fixtures, e.fx = makeFlatpakFixtures(t)
	return e
}

// push copies the fixture named name to addr (its suggested repository
// and tag) with skopeo.
func (e *flatpakEnv) push(t *testing.T, addr, name string) {
	t.Helper()
	f := e.fx[name]
	e.tools.run(t, "skopeo", "copy", "--quiet", "--dest-tls-verify=false",
		"oci:"+filepath.Join(e.fixtures, f.Path), "docker://"+addr+"/"+f.Repository+":"+f.Tag)
}

// user is a new private flatpak user with the remote berthtest at url.
func (e *flatpakEnv) user(t *testing.T, url string) *flatpakUser {
	t.Helper()
	u := newFlatpakUser(t, e.flatpakBin, e.dbusDaemon)
	u.flatpak(t, "remote-add", "--no-gpg-verify", "berthtest", "oci+"+url)
	return u
}

// flatpakUser is a private flatpak user installation with its own session
// bus: HOME, XDG and FLATPAK directories under one temporary directory.
type flatpakUser struct {
	bin     string
	env     []string
	userDir string
	busPID  int
}

// newFlatpakUser starts a private D-Bus session bus (install and update
// activate the OCI authenticator on it) and stops it, and everything it
// activated, at cleanup.
func newFlatpakUser(t *testing.T, flatpakBin, dbusDaemon string) *flatpakUser {
	t.Helper()
	w := t.TempDir()
	dirs := map[string]string{
		"HOME":               filepath.Join(w, "home"),
		"XDG_DATA_HOME":      filepath.Join(w, "home", ".local", "share"),
		"XDG_CONFIG_HOME":    filepath.Join(w, "home", ".config"),
		"XDG_CACHE_HOME":     filepath.Join(w, "home", ".cache"),
		"XDG_RUNTIME_DIR":    filepath.Join(w, "run"),
		"FLATPAK_USER_DIR":   filepath.Join(w, "user"),
		"FLATPAK_SYSTEM_DIR": filepath.Join(w, "system"),
		"FLATPAK_CONFIG_DIR": filepath.Join(w, "etc"),
	}
	var env []string
	for _, kv := range toolEnv() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ours := dirs[k]; ours || k == "DBUS_SESSION_BUS_ADDRESS" || k == "DISPLAY" || k == "WAYLAND_DISPLAY" || strings.HasPrefix(k, "LC_") || k == "LANG" || k == "LANGUAGE" {
			continue
		}
		env = append(env, kv)
	}
	for k, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		env = append(env, k+"="+d)
	}
	env = append(env, "LC_ALL=C.UTF-8")

	// dbus-daemon --fork prints its address and pid on the descriptors
	// given, then the parent exits; the daemon's own output goes to a file
	// so that nothing it activates holds a pipe of ours.
	addrFile, pidFile := filepath.Join(w, "bus-addr"), filepath.Join(w, "bus-pid")
	af, err := os.Create(addrFile)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := os.Create(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	busLog, err := os.Create(filepath.Join(outputDir(t, "e2e", "logs"), logName(t)+".dbus"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dbusDaemon, "--session", "--fork", "--nopidfile", "--print-address=3", "--print-pid=4")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = busLog, busLog
	cmd.ExtraFiles = []*os.File{af, pf}
	err = cmd.Run()
	af.Close()
	pf.Close()
	busLog.Close()
	if err != nil {
		t.Fatalf("dbus-daemon: %v", err)
	}
	addr, _ := os.ReadFile(addrFile)
	pidText, _ := os.ReadFile(pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil || strings.TrimSpace(string(addr)) == "" {
		t.Fatalf("dbus-daemon printed address %q and pid %q", addr, pidText)
	}
	u := &flatpakUser{bin: flatpakBin, userDir: dirs["FLATPAK_USER_DIR"], busPID: pid}
	u.env = append(env, "DBUS_SESSION_BUS_ADDRESS="+strings.TrimSpace(string(addr)))
	t.Cleanup(func() { u.stopBus(t) })
	return u
}

// stopBus ends the bus and the processes it activated (the authenticator
// is double-forked to ppid 1 but keeps the bus's session id): only the
// processes of that session, by pid.
func (u *flatpakUser) stopBus(t *testing.T) {
	pids := sessionProcesses(u.busPID)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && len(sessionProcesses(u.busPID)) > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range sessionProcesses(u.busPID) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// sessionProcesses lists the processes whose session id is sid.
func sessionProcesses(sid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session …; comm may hold spaces.
		rest := b[bytes.LastIndexByte(b, ')')+1:]
		f := strings.Fields(string(rest))
		if len(f) > 3 && f[3] == strconv.Itoa(sid) && f[0] != "Z" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// flatpak runs `flatpak --user args…` and fails the test unless it exits 0.
func (u *flatpakUser) flatpak(t *testing.T, args ...string) string {
	t.Helper()
	out, err := u.try(args...)
	if err != nil {
		t.Fatalf("flatpak --user %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (u *flatpakUser) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), flatpakTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, u.bin, append([]string{"--user"}, args...)...)
	cmd.Env = u.env
	cmd.Dir = u.userDir
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (timed out after %s)", err, flatpakTimeout)
	}
	return out.String(), err
}

// refs returns the refs `flatpak remote-ls` or `flatpak list` print with
// --columns=ref, without their kind (remote-ls prints app/ID/ARCH/BRANCH,
// list prints ID/ARCH/BRANCH).
func refs(out string) []string {
	var rs []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		l = strings.TrimPrefix(strings.TrimPrefix(l, "app/"), "runtime/")
		if strings.Count(l, "/") == 2 && !strings.ContainsAny(l, " \t") {
			rs = append(rs, l)
		}
	}
	return rs
}

func assertRefs(t *testing.T, what, out string, want, notWant []string) {
	t.Helper()
	got := refs(out)
	kindless := func(ref string) string { return ref[strings.IndexByte(ref, '/')+1:] }
	for _, w := range want {
		if !contains(got, kindless(w)) {
			t.Errorf("%s: %s missing from %q\n%s", what, w, got, out)
		}
	}
	for _, n := range notWant {
		if contains(got, kindless(n)) {
			t.Errorf("%s: %s still listed in %q", what, n, got)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

var infoField = regexp.MustCompile(`(?m)^\s*([A-Za-z-]+):\s*(\S.*)$`)

// info returns the fields of `flatpak info ref`.
func (u *flatpakUser) info(t *testing.T, ref string) map[string]string {
	t.Helper()
	out := u.flatpak(t, "info", ref)
	fields := map[string]string{}
	for _, m := range infoField.FindAllStringSubmatch(out, -1) {
		fields[m[1]] = strings.TrimSpace(m[2])
	}
	return fields
}

// TestFlatpak drives the real flatpak client (Debian's) against a real
// berth serve: the fixtures are pushed with skopeo, the registry is added
// as an oci+http remote, the app is installed with its runtime, updated to
// version 2, its tag deleted, and uninstalled. The remote is also added
// from /berth.flatpakrepo and an app installed from its .flatpakref.
func TestFlatpak(t *testing.T) {
	env := newFlatpakEnv(t)
	fx := env.fx
	arch := strings.Split(fx["org.berth.Hello"].Ref, "/")[2]
	helloRef := fx["org.berth.Hello"].Ref
	bareRef := fx["org.berth.Bare"].Ref
	platformRef := fx["org.berth.Platform"].Ref

	srv := startServer(t)
	base := "http://" + srv.Addr
	push := func(name string) { env.push(t, srv.Addr, name) }
	for _, n := range []string{"org.berth.Platform", "org.berth.Bare", "org.berth.Hello"} {
		push(n)
	}

	// remote-add never fails on a bad index: remote-ls is the check.
	u := env.user(t, base)
	out := u.flatpak(t, "remote-ls", "--columns=ref", "berthtest")
	assertRefs(t, "remote-ls", out, []string{helloRef, bareRef, platformRef}, nil)

	// AppStream: the index offers icon URLs, which the client fetches.
	u.flatpak(t, "update", "--appstream", "berthtest")
	asDir := filepath.Join(u.userDir, "appstream", "berthtest", arch)
	icon64 := filepath.Join(asDir, "icons", "64x64", "org.berth.Hello.png")
	iconBytes, err := os.ReadFile(icon64)
	if err != nil {
		t.Errorf("appstream icon not written: %v", err)
	} else {
		cfg, err := png.DecodeConfig(bytes.NewReader(iconBytes))
		if err != nil || cfg.Width != 64 || cfg.Height != 64 {
			t.Errorf("appstream icon %s: %dx%d, %v", icon64, cfg.Width, cfg.Height, err)
		}
		sum := sha256.Sum256(iconBytes)
		if !strings.Contains(indexBody(t, base), "/icons/"+hex.EncodeToString(sum[:])+".png") {
			t.Errorf("the icon flatpak stored is not the one the index links to")
		}
	}
	if _, err := os.Stat(filepath.Join(asDir, "icons", "128x128", "org.berth.Hello.png")); err != nil {
		t.Errorf("128x128 appstream icon not written: %v", err)
	}

	// Install: the runtime comes with the app.
	u.flatpak(t, "install", "-y", "--noninteractive", "berthtest", "org.berth.Hello")
	out = u.flatpak(t, "list", "--columns=ref")
	assertRefs(t, "list after install", out, []string{helloRef, platformRef}, []string{bareRef})
	v1 := u.info(t, helloRef)
	if want := strings.TrimPrefix(fx["org.berth.Hello"].ManifestDigest, "sha256:"); v1["Alt-id"] != want {
		t.Errorf("info Alt-id = %q, want the v1 manifest digest %s", v1["Alt-id"], want)
	}
	if v1["Commit"] == "" {
		t.Errorf("info shows no Commit: %v", v1)
	}
	if out, err := exec.Command("bwrap", "--ro-bind", "/", "/", "true").CombinedOutput(); err == nil {
		if run := u.flatpak(t, "run", "org.berth.Hello"); !strings.Contains(run, "Hello from org.berth.Hello 1.0") {
			t.Errorf("flatpak run: %q", run)
		}
	} else {
		t.Logf("bubblewrap cannot run here (%v: %s); not running the app", err, out)
	}

	// Version 2 under the same tag: update picks it up at once (ETag +
	// Cache-Control: no-cache).
	push("org.berth.Hello-v2")
	u.flatpak(t, "update", "-y", "--noninteractive")
	v2 := u.info(t, helloRef)
	if want := strings.TrimPrefix(fx["org.berth.Hello-v2"].ManifestDigest, "sha256:"); v2["Alt-id"] != want {
		t.Errorf("info Alt-id after update = %q, want the v2 manifest digest %s", v2["Alt-id"], want)
	}
	if v2["Commit"] == "" || v2["Commit"] == v1["Commit"] {
		t.Errorf("commit after update = %q, before %q", v2["Commit"], v1["Commit"])
	}

	// The remote from its .flatpakrepo file, and an app from its
	// .flatpakref (the remote it suggests has the same URL, so flatpak uses
	// the existing one or adds its own; either way the app installs).
	u.flatpak(t, "remote-add", "--from", "berthrepo", base+"/berth.flatpakrepo")
	out = u.flatpak(t, "remote-ls", "--columns=ref", "berthrepo")
	assertRefs(t, "remote-ls of the .flatpakrepo remote", out, []string{helloRef, bareRef, platformRef}, nil)
	u.flatpak(t, "install", "-y", "--noninteractive", "--from", base+"/flatpakref/org.berth.bare/latest.flatpakref")
	assertRefs(t, "list after install --from .flatpakref", u.flatpak(t, "list", "--columns=ref"), []string{bareRef}, nil)

	// Deleting the tag takes the app out of the remote.
	req, _ := http.NewRequest(http.MethodDelete, base+"/v2/org.berth.hello/manifests/latest", nil)
	res, err := httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE tag: %s", res.Status)
	}
	out = u.flatpak(t, "remote-ls", "--columns=ref", "berthtest")
	assertRefs(t, "remote-ls after deleting the tag", out, []string{bareRef, platformRef}, []string{helloRef})

	// Uninstall.
	u.flatpak(t, "uninstall", "-y", "--noninteractive", "org.berth.Hello")
	out = u.flatpak(t, "list", "--columns=ref")
	assertRefs(t, "list after uninstall", out, []string{bareRef, platformRef}, []string{helloRef})
}

// indexBody returns flatpak's index query answer, uncompressed.
func indexBody(t *testing.T, base string) string {
	t.Helper()
	res, err := httpClient().Get(base + "/index/static?label%3Aorg.flatpak.ref%3Aexists=1&os=linux&tag=latest")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("index: %s %v", res.Status, err)
	}
	return string(b)
}
