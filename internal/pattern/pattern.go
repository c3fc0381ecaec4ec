// Package pattern holds the repository patterns of the configuration
// (auth.access rules, webhook filters): their grammar and how they match.
// One definition, so that an access rule and a webhook filter written the
// same way select the same repositories.
package pattern

import (
	"fmt"
	"strings"
)

// Validate checks a pattern: '/'-separated segments of lowercase letters,
// digits, '.', '_', '-' and '*', at most 255 bytes, no empty segment, and
// "**" only as a whole segment.
func Validate(p string) error {
	if p == "" || len(p) > 255 {
		return fmt.Errorf("pattern %q: empty or longer than 255 characters", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" {
			return fmt.Errorf("pattern %q: empty path segment", p)
		}
		if strings.Contains(seg, "**") && seg != "**" {
			return fmt.Errorf("pattern %q: ** must be a whole path segment", p)
		}
		for _, c := range seg {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '*') {
				return fmt.Errorf("pattern %q: %q is not allowed (lowercase letters, digits, . _ - * and /)", p, c)
			}
		}
	}
	return nil
}

// Match reports whether repo matches pattern. Both are split into
// '/'-separated segments. A pattern segment "**" matches ONE OR MORE whole
// segments: "apps/**" matches "apps/x" and "apps/x/y" but not "apps"
// itself (name "apps" too when it is meant), and "**" alone matches every
// repository. Within any other segment "*" matches any run of characters
// (possibly empty) without '/', and every other character matches itself.
func Match(pattern, repo string) bool {
	ps := strings.Split(pattern, "/")
	rs := strings.Split(repo, "/")
	// ok[j]: the pattern segments consumed so far match rs[:j]. One pass
	// per pattern segment keeps this O(len(ps)·len(rs)) whatever the
	// number of "**".
	ok := make([]bool, len(rs)+1)
	next := make([]bool, len(rs)+1)
	ok[0] = true
	for _, p := range ps {
		clear(next)
		if p == "**" {
			// next[j] when some i < j has ok[i].
			seen := false
			for j := 0; j <= len(rs); j++ {
				if seen {
					next[j] = true
				}
				seen = seen || ok[j]
			}
		} else {
			for j := 1; j <= len(rs); j++ {
				next[j] = ok[j-1] && matchSegment(p, rs[j-1])
			}
		}
		ok, next = next, ok
	}
	return ok[len(rs)]
}

// matchSegment matches one segment against a pattern whose only
// metacharacter is "*" (greedy with one backtrack point: linear).
func matchSegment(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
