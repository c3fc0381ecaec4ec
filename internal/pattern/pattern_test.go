package pattern

import (
	"regexp"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		p, r string
		want bool
	}{
		{"apps/**", "apps", false}, {"apps/**", "apps/x", true}, {"apps/**", "apps/x/y", true},
		{"apps/**", "appsx/y", false}, {"apps/*", "apps/x/y", false}, {"apps/*", "apps/x", true},
		{"**", "x/y/z", true}, {"**", "x", true}, {"team-*/**", "team-1/app", true}, {"team-*/**", "team/app", false},
		{"a/**/b", "a/x/y/b", true}, {"a/**/b", "a/b", false}, {"*a*b*", "xaxbx", true}, {"*a*b*", "ba", false},
		{"x", "x", true}, {"x", "x/y", false},
	} {
		if got := Match(c.p, c.r); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.p, c.r, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, ok := range []string{"apps/**", "team-*/x", "**", "a.b_c-d/*"} {
		if err := Validate(ok); err != nil {
			t.Errorf("Validate(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a//b", "a/**b", "A/b", "a b", "a/", strings.Repeat("a", 256)} {
		if Validate(bad) == nil {
			t.Errorf("Validate(%q) accepted", bad)
		}
	}
}

// FuzzMatch: Match agrees with the same semantics written as a regular
// expression (the obvious, slow definition).
func FuzzMatch(f *testing.F) {
	f.Add("apps/**", "apps/x")
	f.Add("*a*/**/b", "xa/y/b")
	f.Fuzz(func(t *testing.T, p, r string) {
		if Validate(p) != nil || len(r) > 64 || strings.ContainsAny(r, "\n") {
			return
		}
		var re strings.Builder
		re.WriteString(`\A`)
		for i, seg := range strings.Split(p, "/") {
			if i > 0 {
				re.WriteString("/")
			}
			if seg == "**" {
				re.WriteString(`[^/]*(?:/[^/]*)*`)
				continue
			}
			re.WriteString(strings.ReplaceAll(regexp.QuoteMeta(seg), `\*`, `[^/]*`))
		}
		re.WriteString(`\z`)
		if got, want := Match(p, r), regexp.MustCompile(re.String()).MatchString(r); got != want {
			t.Errorf("Match(%q, %q) = %v, regexp %s says %v", p, r, got, re.String(), want)
		}
	})
}
