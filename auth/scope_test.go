package auth

import (
	"slices"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	good := []struct {
		in   string
		want Scope
	}{
		{"repository:apps/x:pull", Scope{"repository", "apps/x", []string{"pull"}}},
		{"repository:a/b/c:pull,push", Scope{"repository", "a/b/c", []string{"pull", "push"}}},
		{"repository:a:*", Scope{"repository", "a", []string{"*"}}},
		{"registry:catalog:*", Scope{"registry", "catalog", []string{"*"}}},
		{"repository(plugin):a:pull", Scope{"repository(plugin)", "a", []string{"pull"}}},
		{"repository:localhost:5000/a:pull", Scope{"repository", "localhost:5000/a", []string{"pull"}}},
	}
	for _, tc := range good {
		got, err := ParseScope(tc.in)
		if err != nil {
			t.Errorf("ParseScope(%q): %v", tc.in, err)
			continue
		}
		if got.Type != tc.want.Type || got.Name != tc.want.Name || !slices.Equal(got.Actions, tc.want.Actions) {
			t.Errorf("ParseScope(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("String() = %q, want %q", got.String(), tc.in)
		}
	}
	for _, in := range []string{
		"", "repository", "repository:a", ":a:pull", "repository::pull", "repository:a:",
		"repository:a:pull,", "repository:a:,pull", "repository:a b:pull", `repository:a"b:pull`,
		"repository:a\\b:pull", "repository:a,b:pull", "repository:a:pu ll", "repo sitory:a:pull",
		"repository:a\x00:pull", "repository:é:pull", "repository:" + strings.Repeat("a", 600) + ":pull",
	} {
		if s, err := ParseScope(in); err == nil {
			t.Errorf("ParseScope(%q) = %+v, want an error", in, s)
		}
	}
}
