package web

import (
	"slices"
	"testing"
	"time"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct{ in, want, line string }{
		{"plain", "plain", "plain"},
		{"tab\tand\nnewline", "tab\tand\nnewline", "tab and newline"},
		{"esc\x1b[31mred\x1b[0m", "esc[31mred[0m", "esc[31mred[0m"},
		{"bell\x07 del\x7f nul\x00", "bell del nul", "bell del nul"},
		{"c1\u0085\u009b", "c1", "c1"},
		{"bidi\u202e\u2066txet\u2069\u200f", "biditxet", "biditxet"},
		{"bad \xff utf8", "bad \uFFFD utf8", "bad \uFFFD utf8"},
		{"  spaced   out\r\n", "  spaced   out\n", "spaced out"},
		{"émoji 🚢 ok", "émoji 🚢 ok", "émoji 🚢 ok"},
	} {
		if got := stripControls(tc.in); got != tc.want {
			t.Errorf("stripControls(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := cleanLine(tc.in); got != tc.line {
			t.Errorf("cleanLine(%q) = %q, want %q", tc.in, got, tc.line)
		}
	}
}

func TestSafeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://example.org/app":  "https://example.org/app",
		" http://example.org ":     "http://example.org",
		"javascript:alert(1)":      "",
		"data:text/html,<b>x</b>":  "",
		"//example.org/no-scheme":  "",
		"/relative":                "",
		"https:///no-host":         "",
		"HTTPS://Example.org/Case": "https://Example.org/Case",
	} {
		if got := safeURL(in); got != want {
			t.Errorf("safeURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNaturalOrder(t *testing.T) {
	in := []string{"v10", "v2", "V1", "v1.10", "v1.9", "latest", "repo-10", "repo-2", "a01", "a1", "a", "1.0", "10.0", "2.0"}
	want := []string{"1.0", "2.0", "10.0", "a", "a01", "a1", "latest", "repo-2", "repo-10", "V1", "v1.9", "v1.10", "v2", "v10"}
	got := slices.Clone(in)
	slices.SortFunc(got, func(a, b string) int {
		if naturalLess(a, b) {
			return -1
		}
		if naturalLess(b, a) {
			return 1
		}
		return 0
	})
	if !slices.Equal(got, want) {
		t.Errorf("natural order = %q, want %q", got, want)
	}
	// Total: no two different strings compare equal.
	for _, a := range in {
		for _, b := range in {
			if a != b && !naturalLess(a, b) && !naturalLess(b, a) {
				t.Errorf("%q and %q are not ordered", a, b)
			}
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 bytes", 1: "1 byte", 999: "999 bytes", 1000: "1.0 kB", 1500: "1.5 kB",
		123456: "123 kB", 45678901: "45.7 MB", 3 << 30: "3.2 GB",
	} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		10 * time.Second: "just now", 5 * time.Minute: "5 minutes ago", time.Hour: "1 hour ago",
		47 * time.Hour: "47 hours ago", 3 * 24 * time.Hour: "3 days ago", 90 * 24 * time.Hour: "3 months ago",
		800 * 24 * time.Hour: "2 years ago", -time.Hour: "just now",
	} {
		if got := ago(now.Add(-d), now); got != want {
			t.Errorf("ago(%v) = %q, want %q", d, got, want)
		}
	}
	if ago(time.Time{}, now) != "" {
		t.Error("ago(zero) is not empty")
	}
}

func TestParseRef(t *testing.T) {
	if r, ok := parseRef("app/org.example.App/x86_64/stable"); !ok || r.ID != "org.example.App" || r.Branch != "stable" {
		t.Errorf("a good ref: %+v %v", r, ok)
	}
	for _, bad := range []string{"", "app/x", "plugin/a/b/c", "app//x86_64/stable", "app/a b/x86_64/stable", "app/a\x1b/x86_64/stable", "app/a/x86_64/stable/extra"} {
		if _, ok := parseRef(bad); ok {
			t.Errorf("parseRef(%q) accepted", bad)
		}
	}
}
