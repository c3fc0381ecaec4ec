package notify

import "strings"

// The repository filter uses the patterns of auth.access (config
// validates them with config.ValidatePattern). notify may import only
// meta (DESIGN.md), so the matcher is a copy of auth.Match;
// TestMatchAgreesWithAuth keeps the two identical.

// match reports whether repo matches pattern. Both are split into
// '/'-separated segments. A pattern segment "**" matches one or more
// whole segments ("apps/**" matches "apps/x" and "apps/x/y", not "apps");
// within any other segment "*" matches any run of characters without '/'.
func match(pattern, repo string) bool {
	ps := strings.Split(pattern, "/")
	rs := strings.Split(repo, "/")
	// ok[j]: the pattern segments consumed so far match rs[:j].
	ok := make([]bool, len(rs)+1)
	next := make([]bool, len(rs)+1)
	ok[0] = true
	for _, p := range ps {
		clear(next)
		if p == "**" {
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
