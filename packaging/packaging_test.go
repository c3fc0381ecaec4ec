package packaging

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// maxExposure is the highest systemd-analyze security rating the unit
// may have (0 is best, 10 worst; 2.0 is the top of "OK").
const maxExposure = 2.0

// repoRoot is the checkout the test runs in.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// unitDirectives reads a unit file into key → values (in order; an
// empty assignment is kept, since it resets a list).
func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not a directive: %q", path, line)
		}
		m[k] = append(m[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

var exposureRE = regexp.MustCompile(`Overall exposure level for berth\.service: ([0-9]+\.[0-9]+)`)

// TestUnitSecurity rates packaging/berth.service with systemd-analyze
// security --offline=true and fails above maxExposure.
func TestUnitSecurity(t *testing.T) {
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", "berth.service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	level, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-analyze security --offline=true berth.service: exposure %.1f (at most %.1f)", level, maxExposure)
	if level > maxExposure {
		t.Errorf("exposure %.1f > %.1f:\n%s", level, maxExposure, out)
	}
	// Every check systemd-analyze counts against the unit, so a change
	// that weakens one shows in the failure.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "✗") {
			t.Logf("not met: %s", strings.Join(strings.Fields(line), " "))
		}
	}
}

// TestUnitDirectives pins what the issue asks of the unit, and that the
// unit, the sysusers entry and the default configuration agree.
func TestUnitDirectives(t *testing.T) {
	d := unitDirectives(t, "berth.service")
	want := map[string]string{
		"Type":                    "notify",
		"WatchdogSec":             "30s",
		"ExecStart":               "/usr/bin/berth serve --config /etc/berth/config.yaml",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"User":                    "berth",
		"Group":                   "berth",
		"StateDirectory":          "berth",
		"ConfigurationDirectory":  "berth",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"DevicePolicy":            "closed",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"SystemCallArchitectures": "native",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"ProtectClock":            "yes",
		"ProtectHostname":         "yes",
		"ProtectProc":             "invisible",
		"ProcSubset":              "pid",
		"UMask":                   "0077",
		"RestrictRealtime":        "yes",
		"RestrictSUIDSGID":        "yes",
		"RemoveIPC":               "yes",
	}
	for k, v := range want {
		if got := d[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	if got := d["SystemCallFilter"]; !slices.Equal(got, []string{"@system-service", "~@privileged @resources"}) {
		t.Errorf("SystemCallFilter=%q", got)
	}

	// The user the unit runs as is the one sysusers.d creates, with the
	// state directory as its home.
	sys, err := os.ReadFile("sysusers.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^u berth - "[^"]+" /var/lib/berth /usr/sbin/nologin$`).Match(sys) {
		t.Errorf("sysusers.conf does not create berth with home /var/lib/berth:\n%s", sys)
	}
	// The default configuration keeps data in the StateDirectory, the
	// only writable path in the sandbox.
	cfg, err := os.ReadFile("config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^storage:\n(?:\s+#.*\n)*\s+dir: /var/lib/berth$`).Match(cfg) {
		t.Errorf("config.yaml's storage.dir is not /var/lib/berth:\n%s", cfg)
	}
	s := unitDirectives(t, "berth.socket")
	if got := s["Service"]; len(got) != 1 || got[0] != "berth.service" {
		t.Errorf("berth.socket Service=%q", got)
	}
	if got := s["Accept"]; len(got) != 1 || got[0] != "no" {
		t.Errorf("berth.socket Accept=%q: Berth serves the one socket itself", got)
	}
}

// build holds what packaging/build.sh made from a clean checkout.
type build struct {
	src, deb, rpm string
	describe      string // git describe in the checkout: berth version's first word
	binSum        string // sha256 of the packaged binary
}

// buildPackages clones the repository's HEAD (a clean checkout: no
// uncommitted file, no build output) and runs packaging/build.sh there.
func buildPackages(t *testing.T) build {
	t.Helper()
	root := repoRoot(t)
	nfpm, err := exec.LookPath("nfpm")
	if err != nil {
		nfpm = filepath.Join(root, ".tools", "bin", "nfpm")
		if _, err := os.Stat(nfpm); err != nil {
			t.Fatalf("nfpm is not installed (scripts/install-deps.sh builds it): %v", err)
		}
	}
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	mustRun(t, "git", "clone", "--quiet", "--shared", "--no-checkout", root, src)
	head := strings.TrimSpace(mustRun(t, "git", "-C", root, "rev-parse", "HEAD"))
	mustRun(t, "git", "-C", src, "checkout", "--quiet", head)
	out := filepath.Join(tmp, "dist")
	cmd := exec.Command(filepath.Join(src, "packaging", "build.sh"), out)
	cmd.Dir = src
	// GOFLAGS from a test run (-race) never reach the package build;
	// build.sh clears it itself too.
	cmd.Env = append(os.Environ(), "NFPM="+nfpm, "GOFLAGS=", "ARCH="+runtime.GOARCH)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("packaging/build.sh: %v\n%s", err, stderr.String())
	}
	t.Logf("packaging/build.sh built both packages in %s", time.Since(start).Round(time.Second))
	b := build{src: src}
	for _, line := range strings.Split(strings.TrimSpace(string(stdout)), "\n") {
		switch {
		case strings.HasSuffix(line, ".deb"):
			b.deb = line
		case strings.HasSuffix(line, ".rpm"):
			b.rpm = line
		}
	}
	if b.deb == "" || b.rpm == "" {
		t.Fatalf("build.sh printed %q, want a .deb and a .rpm", stdout)
	}
	b.describe = strings.TrimSpace(mustRun(t, "git", "-C", src, "describe", "--tags", "--always", "--dirty", "--match", "v[0-9]*"))
	if strings.HasSuffix(b.describe, "-dirty") {
		t.Fatalf("a fresh clone is dirty: %s", b.describe)
	}
	bin, err := os.ReadFile(filepath.Join(out, "stage-linux-"+runtime.GOARCH, "berth"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	b.binSum = hex.EncodeToString(sum[:])
	return b
}

// packagedFiles are the files and directories both packages install
// (zsh's completion directory differs: Debian's zsh reads
// vendor-completions, Fedora's site-functions).
var packagedFiles = []string{
	"/usr/bin/berth",
	"/usr/lib/systemd/system/berth.service",
	"/usr/lib/systemd/system/berth.socket",
	"/usr/lib/sysusers.d/berth.conf",
	"/etc/berth",
	"/etc/berth/config.yaml",
	"/var/lib/berth",
	"/usr/share/bash-completion/completions/berth",
	"/usr/share/fish/vendor_completions.d/berth.fish",
	"/usr/share/doc/berth/install.md",
}

// TestPackages builds the .deb and .rpm from a clean checkout, inspects
// both, installs the .deb with dpkg -i, checks what it installed (berth
// version, the user, the files and their owners, the unit with
// systemd-analyze verify, a real start as the berth user), and purges it.
func TestPackages(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("installing the .deb needs root (the test command runs as root)")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "rpm", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (scripts/install-deps.sh): %v", tool, err)
		}
	}
	// Never touch a real installation.
	if exec.Command("dpkg-query", "-W", "-f=${Status}", "berth").Run() == nil {
		if st, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "berth").Output(); !strings.Contains(string(st), "not-installed") {
			t.Fatalf("a berth package is installed on this machine (%s); the test installs and purges its own", st)
		}
	}
	for _, p := range []string{"/usr/bin/berth", "/etc/berth", "/var/lib/berth"} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists; the test installs and purges its own berth", p)
		}
	}

	b := buildPackages(t)
	pkgVersion := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(b.deb), "berth_"), "_"+runtime.GOARCH+".deb")
	if strings.Contains(pkgVersion, "dirty") || !regexp.MustCompile(`^[0-9]`).MatchString(pkgVersion) {
		t.Errorf("package version %q", pkgVersion)
	}

	t.Run("rpm", func(t *testing.T) { checkRPM(t, b, pkgVersion) })
	t.Run("deb", func(t *testing.T) { checkDeb(t, b, pkgVersion) })
}

func checkRPM(t *testing.T, b build, pkgVersion string) {
	files := strings.Fields(mustRun(t, "rpm", "-qpl", b.rpm))
	for _, f := range append(slices.Clone(packagedFiles), "/usr/share/zsh/site-functions/_berth") {
		if !slices.Contains(files, f) {
			t.Errorf("rpm lacks %s; has %v", f, files)
		}
	}
	rpmArch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	if got := mustRun(t, "rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{ARCH}", b.rpm); got != "berth "+pkgVersion+" "+rpmArch {
		t.Errorf("rpm: %q", got)
	}
	// Flags, modes and digests of what it would install.
	info := map[string][]string{}
	for _, line := range strings.Split(mustRun(t, "rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEMODES:perms} %{FILEDIGESTS} %{FILEFLAGS:fflags}\n]", b.rpm), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			info[f[0]] = f[1:]
		}
	}
	if got := info["/usr/bin/berth"]; len(got) < 2 || got[0] != "-rwxr-xr-x" || got[1] != b.binSum {
		t.Errorf("rpm /usr/bin/berth: %v, want mode -rwxr-xr-x and sha256 %s", got, b.binSum)
	}
	if got := info["/etc/berth/config.yaml"]; len(got) < 3 || got[2] != "cn" {
		t.Errorf("rpm /etc/berth/config.yaml: %v, want %%config(noreplace) (flags cn)", got)
	}
	if got := info["/var/lib/berth"]; len(got) < 1 || got[0] != "drwxr-x---" {
		t.Errorf("rpm /var/lib/berth: %v", got)
	}
	scripts := mustRun(t, "rpm", "-qp", "--scripts", b.rpm)
	for _, want := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet",
		"systemd-sysusers /usr/lib/sysusers.d/berth.conf", "[ -d /run/systemd/system ]"} {
		if !strings.Contains(scripts, want) {
			t.Errorf("rpm scripts lack %q", want)
		}
	}
	// rpm reads the shadow-utils dependency for useradd.
	if reqs := mustRun(t, "rpm", "-qpR", b.rpm); !strings.Contains(reqs, "shadow-utils") {
		t.Errorf("rpm requires:\n%s", reqs)
	}
}

// dpkg runs dpkg, waiting while another dpkg or apt holds the lock (the
// machine's other jobs install packages too).
func dpkg(t *testing.T, env []string, args ...string) string {
	t.Helper()
	for i := 0; ; i++ {
		cmd := exec.Command("dpkg", args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err == nil {
			return string(out)
		}
		if strings.Contains(string(out), "lock") && i < 150 {
			time.Sleep(2 * time.Second)
			continue
		}
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func checkDeb(t *testing.T, b build, pkgVersion string) {
	listing := mustRun(t, "dpkg-deb", "-c", b.deb)
	for _, f := range append(slices.Clone(packagedFiles), "/usr/share/zsh/vendor-completions/_berth") {
		if !strings.Contains(listing, " ."+f+"\n") && !strings.Contains(listing, " ."+f+"/\n") {
			t.Errorf("deb lacks %s:\n%s", f, listing)
		}
	}
	if got := mustRun(t, "dpkg-deb", "-f", b.deb, "Version"); strings.TrimSpace(got) != pkgVersion+"-1" {
		t.Errorf("deb Version %q", got)
	}
	conffiles := mustRun(t, "sh", "-c", `dpkg-deb --ctrl-tarfile "$0" | tar -xO ./conffiles`, b.deb)
	if strings.TrimSpace(conffiles) != "/etc/berth/config.yaml" {
		t.Errorf("conffiles %q", conffiles)
	}

	// The maintainer scripts call systemctl only where systemd runs: a
	// systemctl first on PATH records every call.
	fake := t.TempDir()
	calls := filepath.Join(fake, "calls")
	if err := os.WriteFile(filepath.Join(fake, "systemctl"), []byte("#!/bin/sh\necho \"$*\" >>"+calls+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+fake+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive")
	_, userErr := user.Lookup("berth")
	userExisted := userErr == nil

	t.Cleanup(func() {
		// Leave the machine as it was, whatever failed above.
		c := exec.Command("dpkg", "--purge", "berth")
		c.Env = env
		c.Run()
		os.RemoveAll("/var/lib/berth")
		if !userExisted {
			exec.Command("userdel", "berth").Run()
			exec.Command("groupdel", "berth").Run()
		}
	})
	dpkg(t, env, "-i", b.deb)

	// berth version from the installed binary: the release version of
	// the checkout it was built from.
	out := mustRun(t, "/usr/bin/berth", "version")
	if !strings.HasPrefix(out, "berth "+b.describe+"\n") || !strings.Contains(out, "built:   20") || strings.Contains(out, "(modified)") {
		t.Errorf("installed berth version:\n%s\nwant version %s", out, b.describe)
	}
	if got := mustRun(t, "/usr/bin/berth", "--version"); got != out {
		t.Errorf("berth --version differs from berth version:\n%s", got)
	}
	if sum := sha256File(t, "/usr/bin/berth"); sum != b.binSum {
		t.Errorf("installed binary sha256 %s, built %s", sum, b.binSum)
	}

	// The user, and what it owns.
	u, err := user.Lookup("berth")
	if err != nil {
		t.Fatalf("no berth user after install: %v", err)
	}
	if u.HomeDir != "/var/lib/berth" {
		t.Errorf("berth's home %q", u.HomeDir)
	}
	if pw := mustRun(t, "getent", "passwd", "berth"); !strings.HasSuffix(strings.TrimSpace(pw), ":/usr/sbin/nologin") {
		t.Errorf("berth may log in: %s", pw)
	}
	if uid, _ := strconv.Atoi(u.Uid); uid == 0 || uid >= 1000 {
		t.Errorf("berth uid %d: want a system uid", uid)
	}
	g, err := user.LookupGroup("berth")
	if err != nil {
		t.Fatal(err)
	}
	checkOwner(t, "/var/lib/berth", u.Uid, g.Gid, 0o750|os.ModeDir)
	checkOwner(t, "/etc/berth/config.yaml", "0", g.Gid, 0o640)
	checkOwner(t, "/usr/bin/berth", "0", "0", 0o755)
	for src, dst := range map[string]string{
		"berth.service": "/usr/lib/systemd/system/berth.service",
		"berth.socket":  "/usr/lib/systemd/system/berth.socket",
		"config.yaml":   "/etc/berth/config.yaml",
		"sysusers.conf": "/usr/lib/sysusers.d/berth.conf",
	} {
		if sha256File(t, filepath.Join(b.src, "packaging", src)) != sha256File(t, dst) {
			t.Errorf("%s differs from packaging/%s", dst, src)
		}
	}

	// systemd-analyze verify on the installed units (the binary they
	// start now exists).
	if out, err := exec.Command("systemd-analyze", "verify", "/usr/lib/systemd/system/berth.service", "/usr/lib/systemd/system/berth.socket").CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	} else {
		t.Log("systemd-analyze verify berth.service berth.socket: no findings")
	}

	// The default configuration is valid, and the berth user can run
	// Berth with it: it reads the config and writes the data directory.
	if out := mustRun(t, "/usr/bin/berth", "config", "check", "/etc/berth/config.yaml"); !strings.Contains(out, "configuration is valid") {
		t.Errorf("config check: %s", out)
	}
	serveAsBerth(t, u)

	// Bash completion: the installed file defines a completion for berth.
	if _, err := exec.LookPath("bash"); err == nil {
		if got := mustRun(t, "bash", "-c", "source /usr/share/bash-completion/completions/berth && complete -p berth"); !strings.Contains(got, "berth") || !strings.HasPrefix(got, "complete ") {
			t.Errorf("bash completion: %q", got)
		}
	}
	for f, head := range map[string]string{
		"/usr/share/zsh/vendor-completions/_berth":        "#compdef berth",
		"/usr/share/fish/vendor_completions.d/berth.fish": "# fish completion for berth",
	} {
		if c, err := os.ReadFile(f); err != nil || !strings.HasPrefix(string(c), head) {
			t.Errorf("%s: %v %.40q", f, err, c)
		}
	}

	// No systemd here (a CI job): the scripts must not have called
	// systemctl. Where systemd runs, they reload it.
	got, _ := os.ReadFile(calls)
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		if !strings.Contains(string(got), "daemon-reload") {
			t.Errorf("systemd runs but postinst did not daemon-reload: %q", got)
		}
	} else if len(got) > 0 {
		t.Errorf("systemctl called without systemd running: %q", got)
	}

	// Reinstall (an upgrade to the same version): the operator's
	// configuration is kept, as is its mode.
	if err := os.WriteFile("/etc/berth/config.yaml", []byte("http:\n  addr: \":5001\"\nstorage:\n  dir: /var/lib/berth\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown("/etc/berth/config.yaml", 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod("/etc/berth/config.yaml", 0o600); err != nil {
		t.Fatal(err)
	}
	dpkg(t, append(env, "DPKG_FORCE=confold"), "-i", b.deb)
	if c, _ := os.ReadFile("/etc/berth/config.yaml"); !strings.Contains(string(c), ":5001") {
		t.Errorf("reinstall replaced the changed configuration:\n%s", c)
	}
	checkOwner(t, "/etc/berth/config.yaml", "0", "0", 0o600)

	// Purge: the package's files go; the data stays (not the package's
	// to delete).
	dpkg(t, env, "--purge", "berth")
	for _, f := range []string{"/usr/bin/berth", "/usr/lib/systemd/system/berth.service", "/etc/berth/config.yaml", "/etc/berth",
		"/usr/share/bash-completion/completions/berth"} {
		if _, err := os.Lstat(f); !os.IsNotExist(err) {
			t.Errorf("%s left after purge: %v", f, err)
		}
	}
	if _, err := os.Stat("/var/lib/berth/meta.db"); err != nil {
		t.Errorf("purge deleted the registry's data: %v", err)
	}
}

// serveAsBerth runs the installed binary as the berth user with the
// installed configuration (on a free loopback port) until /v2/ answers.
func serveAsBerth(t *testing.T, u *user.User) {
	t.Helper()
	// Not under t.TempDir, whose parent only root may enter.
	run, err := os.MkdirTemp("", "berth-pkg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	if err := os.Chmod(run, 0o777); err != nil {
		t.Fatal(err)
	}
	addrFile := filepath.Join(run, "addr")
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	cmd := exec.Command("/usr/bin/berth", "serve",
		"--config", "/etc/berth/config.yaml", "--addr", "127.0.0.1:0", "--addr-file", addrFile)
	cmd.Dir = "/var/lib/berth"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var addr string
	for addr == "" {
		select {
		case err := <-exited:
			t.Fatalf("berth serve as berth exited: %v\n%s", err, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if b, err := os.ReadFile(addrFile); err == nil {
			addr = strings.TrimSpace(string(b))
		}
	}
	res, err := http.Get("http://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("/v2/ as berth: %d", res.StatusCode)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Errorf("berth serve: %v\n%s", err, logs.String())
	}
	checkOwner(t, "/var/lib/berth/meta.db", u.Uid, "", 0) // the unit's UMask= applies under systemd only
}

func checkOwner(t *testing.T, path, uid, gid string, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if got := fmt.Sprint(st.Uid); got != uid {
		t.Errorf("%s: uid %s, want %s", path, got, uid)
	}
	if got := fmt.Sprint(st.Gid); gid != "" && got != gid {
		t.Errorf("%s: gid %s, want %s", path, got, gid)
	}
	if mode != 0 && fi.Mode()&(os.ModePerm|os.ModeDir) != mode {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
