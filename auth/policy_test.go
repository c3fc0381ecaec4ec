package auth

import (
	"slices"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, repo string
		want          bool
	}{
		{"apps/**", "apps/x", true},
		{"apps/**", "apps/x/y", true},
		{"apps/**", "apps/x/y/z", true},
		{"apps/**", "apps", false}, // ** is one or more segments
		{"apps/**", "appsx/y", false},
		{"apps/**", "x/apps/y", false},
		{"**", "a", true},
		{"**", "a/b/c", true},
		{"**/x", "a/b/x", true},
		{"**/x", "x", false},
		{"a/**/b", "a/1/b", true},
		{"a/**/b", "a/1/2/b", true},
		{"a/**/b", "a/b", false},
		{"a/**/**/b", "a/1/2/b", true},
		{"a/**/**/b", "a/1/b", false},
		{"*", "a", true},
		{"*", "a/b", false},
		{"team/*", "team/x", true},
		{"team/*", "team/x/y", false},
		{"team/*", "team", false},
		{"*/x", "a/x", true},
		{"*/x", "a/b/x", false},
		{"app*", "app", true},
		{"app*", "apps", true},
		{"app*", "ap", false},
		{"*-test", "web-test", true},
		{"*-test", "web-test2", false},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "acb", false},
		{"exact/name", "exact/name", true},
		{"exact/name", "exact/nam", false},
		{"exact/name", "exact/name/more", false},
		{"a.b", "axb", false}, // '.' is literal, not a regexp
	}
	for _, tc := range tests {
		if got := Match(tc.pattern, tc.repo); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.repo, got, tc.want)
		}
	}
}

// TestMatchManyStars: patterns full of ** and * stay fast (no exponential
// backtracking); this would hang a naive recursive matcher.
func TestMatchManyStars(t *testing.T) {
	pat := strings.Repeat("**/", 40) + "z"
	repo := strings.Repeat("a/", 100) + "b"
	if Match(pat, repo) {
		t.Fatal("matched a repository that does not end in z")
	}
	seg := strings.Repeat("*a", 60) + "b"
	if Match(seg, strings.Repeat("a", 200)) {
		t.Fatal("matched a segment without b")
	}
}

func TestPolicy(t *testing.T) {
	f := newFixture(t)
	p := f.svc.policy
	type want struct {
		user, repo string
		acts       []Action
	}
	for _, w := range []want{
		// anonymous rules; they apply to authenticated users too
		{"", "apps/org.x.App", []Action{Pull}},
		{"", "apps", nil},
		{"", "team/a", nil},
		{"dave", "apps/org.x.App", []Action{Pull}},
		// users, and rights adding up over rules (alice: push+overwrite
		// from her own entry, pull from the devs group)
		{"alice", "team/a", []Action{Pull, Push, Overwrite}},
		{"alice", "team/a/b", nil},
		// group membership
		{"bob", "team/a", []Action{Pull}},
		{"carol", "team/a", []Action{Pull, Delete}},
		{"dave", "team/a", nil},
		{"dave", "other/x", []Action{Pull}},
		{"dave", "other/y", nil},
		// "*" is any authenticated user, never anonymous
		{"dave", "shared/q", []Action{Pull}},
		{"nobody-known", "shared/q", []Action{Pull}},
		{"", "shared/q", nil},
		// admins by name and by group:NAME
		{"root", "anything/at/all", allActions},
		{"eve", "team/a", allActions},
		// nothing granted by default
		{"alice", "unlisted", nil},
		{"", "unlisted", nil},
		// names no route produces never match
		{"root", "apps/../team/a", nil},
		{"", "apps/./x", nil},
		{"", "apps//x", nil},
		{"", "", nil},
	} {
		got := p.rights(w.user, w.repo).list()
		if !slices.Equal(got, w.acts) {
			t.Errorf("rights(%q, %q) = %v, want %v", w.user, w.repo, got, w.acts)
		}
		// Allowed says the same for Basic principals.
		for _, a := range allActions {
			method := MethodBasic
			if w.user == "" {
				method = MethodAnonymous
			}
			if got := f.svc.Allowed(Principal{Name: w.user, Method: method}, w.repo, a); got != slices.Contains(w.acts, a) {
				t.Errorf("Allowed(%q, %q, %s) = %v", w.user, w.repo, a, got)
			}
		}
	}
	if f.svc.Allowed(Principal{Name: "root", Method: MethodBasic}, "x", "launch") {
		t.Error("an unknown action was allowed to an admin")
	}
	// A certificate user is a user like any other.
	if !f.svc.Allowed(Principal{Name: "carol", Method: MethodCert}, "team/a", Delete) {
		t.Error("cert principal carol cannot delete in team/a")
	}
}

func TestPolicyAdminGroupPrefixIsNotAUser(t *testing.T) {
	// A user literally named like the admin entry "group:ops" cannot exist
	// (':' is refused), and only group members of ops are admins.
	f := newFixture(t)
	if f.svc.policy.isAdmin("group:ops") || f.svc.policy.isAdmin("ops") {
		t.Fatal("admin through the group's name")
	}
	if !f.svc.policy.isAdmin("eve") || f.svc.policy.isAdmin("bob") {
		t.Fatal("group admins wrong")
	}
}

func TestPullsSomewhere(t *testing.T) {
	f := newFixture(t)
	for user, want := range map[string]bool{"": true, "dave": true, "root": true} {
		if got := f.svc.policy.pullsSomewhere(user); got != want {
			t.Errorf("pullsSomewhere(%q) = %v", user, got)
		}
	}
	g := newFixture(t, func(c *Config) {
		c.Rules = []Rule{{Patterns: []string{"x"}, Users: map[string][]Action{"alice": {Push}}}}
	})
	if g.svc.policy.pullsSomewhere("") || g.svc.policy.pullsSomewhere("alice") {
		t.Error("pull somewhere without any pull rule")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	htp := writeFile(t, dir, "htpasswd", "")
	for name, mutate := range map[string]func(*Config){
		"unknown action":       func(c *Config) { c.Rules[0].Anonymous = []Action{"write"} },
		"unknown rule group":   func(c *Config) { c.Rules[1].Groups["nope"] = []Action{Pull} },
		"unknown admin group":  func(c *Config) { c.Admins = []string{"group:nope"} },
		"bad admin name":       func(c *Config) { c.Admins = []string{"a:b"} },
		"rule without pattern": func(c *Config) { c.Rules[0].Patterns = nil },
		"bad pattern":          func(c *Config) { c.Rules[0].Patterns = []string{"a/**x"} },
		"empty segment":        func(c *Config) { c.Rules[0].Patterns = []string{"a//b"} },
		"missing htpasswd":     func(c *Config) { c.Htpasswd = dir + "/none" },
		"token without issuer": func(c *Config) { c.Token.Issuer = "" },
		"token service quote":  func(c *Config) { c.Token.Service = `a"b` },
		"token no expiry":      func(c *Config) { c.Token.Expiry = 0 },
		"token no key":         func(c *Config) { c.Token.DefaultKeyPath = "" },
	} {
		cfg := testConfig(dir, htp)
		mutate(&cfg)
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}
