package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestMakeBuildInfo(t *testing.T) {
	vcs := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/berth-dev/berth", Version: "v0.0.0-20260101000000-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-01-01T00:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	devel := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}

	// A checkout build: everything from the VCS stamp.
	got := makeBuildInfo(vcs, "", "", "")
	want := buildInfo{
		Version: "v0.0.0-20260101000000-0123456789ab+dirty", Commit: "0123456789abcdef0123456789abcdef01234567",
		Modified: true, Date: "2026-01-01T00:00:00Z", DateIsVCS: true, GoVersion: "go1.26.8",
		Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}
	if got != want {
		t.Errorf("vcs only:\n got %+v\nwant %+v", got, want)
	}
	if s := got.String(); !strings.Contains(s, "commit:  0123456789abcdef0123456789abcdef01234567 (modified)\n") ||
		!strings.Contains(s, "built:   unknown (commit time 2026-01-01T00:00:00Z)\n") {
		t.Errorf("vcs only text:\n%s", s)
	}

	// A release build: -ldflags win, and a clean describe string on the
	// same revision keeps vcs.modified.
	got = makeBuildInfo(vcs, "v1.2.3", "0123456789abcdef0123456789abcdef01234567", "2026-02-03T04:05:06Z")
	if got.Version != "v1.2.3" || got.Date != "2026-02-03T04:05:06Z" || got.DateIsVCS || !got.Modified {
		t.Errorf("ldflags over vcs: %+v", got)
	}

	// A release build from a tarball (no VCS stamp): "-dirty" is the only
	// word on modification.
	got = makeBuildInfo(devel, "v1.2.3-1-gabcdef0-dirty", "abcdef0", "2026-02-03T04:05:06Z")
	if got.Version != "v1.2.3-1-gabcdef0-dirty" || got.Commit != "abcdef0" || !got.Modified {
		t.Errorf("ldflags only: %+v", got)
	}

	// Nothing known: "(devel)", and the text says what is unknown.
	got = makeBuildInfo(devel, "", "", "")
	if got.Version != "(devel)" || got.Commit != "" || got.Date != "" {
		t.Errorf("nothing: %+v", got)
	}
	if s := got.String(); !strings.HasPrefix(s, "berth (devel)\n") || !strings.Contains(s, "commit:  unknown\n") ||
		!strings.Contains(s, "built:   unknown\n") || !strings.Contains(s, "go:      go1.26.8 ") {
		t.Errorf("nothing text:\n%s", s)
	}
	if got := makeBuildInfo(nil, "", "", ""); got.Version != "(devel)" || got.GoVersion != runtime.Version() {
		t.Errorf("no build info: %+v", got)
	}
}

// TestVersionFlagMatchesCommand: `berth --version` prints what `berth
// version` prints (cobra's template would otherwise print its own line).
func TestVersionFlagMatchesCommand(t *testing.T) {
	cmdOut, err := run(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	flagOut, err := run(t, "--version")
	if err != nil {
		t.Fatal(err)
	}
	if cmdOut != flagOut {
		t.Fatalf("berth version:\n%s\nberth --version:\n%s", cmdOut, flagOut)
	}
	for _, line := range []string{"berth ", "commit:  ", "built:   ", "go:      " + runtime.Version()} {
		if !strings.Contains(cmdOut, line) {
			t.Errorf("version output lacks %q:\n%s", line, cmdOut)
		}
	}
}

// buildBerth builds cmd/berth into a temporary directory with extra go
// build arguments. GOFLAGS is cleared: this machine's go env sets
// -buildvcs=false, and a test's -race must not leak into the build.
func buildBerth(t *testing.T, args ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "berth")
	cmd := exec.Command("go", append(append([]string{"build", "-o", bin}, args...), ".")...)
	cmd.Env = append(os.Environ(), "GOFLAGS=", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", args, err, out)
	}
	return bin
}

func runBin(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return string(out)
}

// TestVersionReleaseBuild builds the binary as a release build does
// (-ldflags -X) and runs it.
func TestVersionReleaseBuild(t *testing.T) {
	const ldflags = "-X main.version=v9.8.7-rc.1 -X main.commit=feedfacefeedfacefeedfacefeedfacefeedface -X main.date=2030-04-05T06:07:08Z"
	bin := buildBerth(t, "-buildvcs=false", "-ldflags", ldflags)
	want := "berth v9.8.7-rc.1\n" +
		"commit:  feedfacefeedfacefeedfacefeedfacefeedface\n" +
		"built:   2030-04-05T06:07:08Z\n" +
		"go:      " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if got := runBin(t, bin, "version"); got != want {
		t.Errorf("berth version:\n%s\nwant:\n%s", got, want)
	}
	if got := runBin(t, bin, "--version"); got != want {
		t.Errorf("berth --version:\n%s\nwant:\n%s", got, want)
	}
	var info buildInfo
	if err := json.Unmarshal([]byte(runBin(t, bin, "version", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if info.Version != "v9.8.7-rc.1" || info.Commit != "feedfacefeedfacefeedfacefeedfacefeedface" ||
		info.Date != "2030-04-05T06:07:08Z" || info.GoVersion != runtime.Version() {
		t.Errorf("version --json: %+v", info)
	}
}

// TestVersionCheckoutBuild builds from the checkout with no -ldflags: the
// version, commit and time come from what Go embeds (never "(devel)").
func TestVersionCheckoutBuild(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed to build with VCS information:", err)
	}
	bin := buildBerth(t, "-buildvcs=true")
	out := runBin(t, bin, "version")
	var info buildInfo
	if err := json.Unmarshal([]byte(runBin(t, bin, "version", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if info.Version == "(devel)" || !strings.HasPrefix(info.Version, "v") {
		t.Errorf("version %q: want the module version Go derives from git\n%s", info.Version, out)
	}
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(info.Commit) {
		t.Fatalf("commit %q is not a git revision\n%s", info.Commit, out)
	}
	// HEAD may move while the test runs (others commit); the revision
	// must be a commit this repository has.
	if out, err := exec.Command("git", "cat-file", "-e", info.Commit+"^{commit}").CombinedOutput(); err != nil {
		t.Errorf("commit %s unknown to git: %v %s", info.Commit, err, out)
	}
	if !info.DateIsVCS || !regexp.MustCompile(`^\d{4}-\d\d-\d\dT`).MatchString(info.Date) {
		t.Errorf("date %q (commit time %v)", info.Date, info.DateIsVCS)
	}
	if !strings.Contains(out, "commit:  "+info.Commit) || !strings.Contains(out, "(commit time "+info.Date+")") {
		t.Errorf("text does not match JSON:\n%s", out)
	}
}
