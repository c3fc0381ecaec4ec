package oci

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, tc := range nameCases() {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateName(tc.in)
			if tc.ok && err != nil {
				t.Fatalf("ValidateName(%q) = %v, want nil", tc.in, err)
			}
			if !tc.ok {
				if err == nil {
					t.Fatalf("ValidateName(%q) = nil, want error", tc.in)
				}
				if !errors.Is(err, ErrNameInvalid) {
					t.Fatalf("ValidateName(%q) = %v, want it to wrap ErrNameInvalid", tc.in, err)
				}
			}
		})
	}
}

type grammarCase struct {
	name string
	in   string
	ok   bool
}

func nameCases() []grammarCase {
	return []grammarCase{
		{"single", "alpine", true},
		{"digits", "0", true},
		{"nested", "a/b/c", true},
		{"deep", "library/ubuntu/jammy/x", true},
		{"dot", "a.b", true},
		{"underscore", "a_b", true},
		{"double underscore", "a__b", true},
		{"dash", "a-b", true},
		{"dashes", "a---b", true},
		{"mixed separators", "my-org/my_app.v2__x--y", true},
		{"max length", strings.Repeat("a", MaxNameLength), true},
		{"max length nested", strings.Repeat("a/", 127) + "a", true},

		{"empty", "", false},
		{"too long", strings.Repeat("a", MaxNameLength+1), false},
		{"too long nested", strings.Repeat("ab/", 85) + "a", false},
		{"dotdot", "..", false},
		{"dotdot component", "a/../b", false},
		{"dot component", "a/./b", false},
		{"double dot separator", "a..b", false},
		{"triple underscore", "a___b", false},
		{"dot underscore", "a._b", false},
		{"dash dot", "a-.b", false},
		{"uppercase", "Alpine", false},
		{"uppercase inside", "library/Ubuntu", false},
		{"leading slash", "/a", false},
		{"trailing slash", "a/", false},
		{"double slash", "a//b", false},
		{"leading dot", ".a", false},
		{"trailing dot", "a.", false},
		{"leading dash", "-a", false},
		{"trailing dash", "a-", false},
		{"leading underscore", "_a", false},
		{"trailing underscore", "a_", false},
		{"component leading dash", "a/-b", false},
		{"component trailing dot", "a./b", false},
		{"space", "a b", false},
		{"colon", "a:b", false},
		{"at", "a@sha256", false},
		{"backslash", `a\b`, false},
		{"nul", "a\x00b", false},
		{"unicode", "caf\u00e9", false},
		{"slash only", "/", false},
	}
}

func TestValidateTag(t *testing.T) {
	for _, tc := range tagCases() {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateTag(tc.in)
			if tc.ok && err != nil {
				t.Fatalf("ValidateTag(%q) = %v, want nil", tc.in, err)
			}
			if !tc.ok {
				if err == nil {
					t.Fatalf("ValidateTag(%q) = nil, want error", tc.in)
				}
				if !errors.Is(err, ErrTagInvalid) {
					t.Fatalf("ValidateTag(%q) = %v, want it to wrap ErrTagInvalid", tc.in, err)
				}
			}
		})
	}
}

func tagCases() []grammarCase {
	return []grammarCase{
		{"latest", "latest", true},
		{"semver", "v1.2.3-rc.1", true},
		{"uppercase", "Latest", true},
		{"leading underscore", "_x", true},
		{"leading digit", "1", true},
		{"single char", "a", true},
		{"inner dots dashes", "a.-_b", true},
		{"128 chars", strings.Repeat("a", 128), true},

		{"empty", "", false},
		{"129 chars", strings.Repeat("a", 129), false},
		{"leading dot", ".a", false},
		{"leading dash", "-a", false},
		{"dot", ".", false},
		{"dotdot", "..", false},
		{"slash", "a/b", false},
		{"colon", "a:b", false},
		{"plus", "1.0+build", false},
		{"space", "a b", false},
		{"digest-like", "sha256:abc", false},
		{"unicode", "t\u00e9", false},
	}
}
