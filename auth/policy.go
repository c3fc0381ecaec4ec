package auth

import (
	"fmt"
	"slices"
	"strings"

	pat "github.com/berth-dev/berth/internal/pattern"
)

// policy is the access rules, compiled once at New.
type policy struct {
	rules       []Rule
	groupsOf    map[string][]string // user → groups
	adminUsers  map[string]bool
	adminGroups map[string]bool
}

func newPolicy(cfg Config) (*policy, error) {
	p := &policy{
		rules:       cfg.Rules,
		groupsOf:    map[string][]string{},
		adminUsers:  map[string]bool{},
		adminGroups: map[string]bool{},
	}
	for g, users := range cfg.Groups {
		if g == "" || strings.ContainsAny(g, ":*") {
			return nil, fmt.Errorf("auth: %q is not a valid group name", g)
		}
		for _, u := range users {
			p.groupsOf[u] = append(p.groupsOf[u], g)
		}
	}
	for _, a := range cfg.Admins {
		if g, ok := strings.CutPrefix(a, "group:"); ok {
			if _, known := cfg.Groups[g]; !known {
				return nil, fmt.Errorf("auth: admins: no group %q", g)
			}
			p.adminGroups[g] = true
		} else if validUserName(a) {
			p.adminUsers[a] = true
		} else {
			return nil, fmt.Errorf("auth: admins: %q is not a valid user name", a)
		}
	}
	for i, r := range cfg.Rules {
		if len(r.Patterns) == 0 {
			return nil, fmt.Errorf("auth: rule %d: no repository pattern", i)
		}
		for _, pat := range r.Patterns {
			if err := validPattern(pat); err != nil {
				return nil, fmt.Errorf("auth: rule %d: %w", i, err)
			}
		}
		check := func(key string, acts []Action) error {
			for _, a := range acts {
				if !slices.Contains(allActions, a) {
					return fmt.Errorf("auth: rule %d: %s: unknown action %q", i, key, a)
				}
			}
			return nil
		}
		if err := check("anonymous", r.Anonymous); err != nil {
			return nil, err
		}
		for u, acts := range r.Users {
			if err := check("users."+u, acts); err != nil {
				return nil, err
			}
		}
		for g, acts := range r.Groups {
			if _, known := cfg.Groups[g]; !known {
				return nil, fmt.Errorf("auth: rule %d: no group %q", i, g)
			}
			if err := check("groups."+g, acts); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// validPattern: the configuration's pattern grammar (internal/pattern).
func validPattern(p string) error { return pat.Validate(p) }

// isAdmin: the user is named in Admins, directly or through a group.
func (p *policy) isAdmin(user string) bool {
	if user == "" {
		return false
	}
	if p.adminUsers[user] {
		return true
	}
	for _, g := range p.groupsOf[user] {
		if p.adminGroups[g] {
			return true
		}
	}
	return false
}

// rights is the set of actions the rules grant user ("" = anonymous) on
// repo, as a bit set over allActions. Rights add up over every matching
// rule: anonymous actions apply to everyone, Users["*"] to every
// authenticated user, Users[user] and Groups[g] for user's groups to user.
func (p *policy) rights(user, repo string) actionSet {
	if !validRepo(repo) {
		return 0
	}
	if p.isAdmin(user) {
		return allSet
	}
	var set actionSet
	for _, r := range p.rules {
		if !matchAny(r.Patterns, repo) {
			continue
		}
		set |= setOf(r.Anonymous)
		if user == "" {
			continue
		}
		set |= setOf(r.Users["*"]) | setOf(r.Users[user])
		for _, g := range p.groupsOf[user] {
			set |= setOf(r.Groups[g])
		}
	}
	return set
}

// pullsSomewhere: some rule grants user pull on some repository (the
// condition for registry:catalog:*).
func (p *policy) pullsSomewhere(user string) bool {
	if p.isAdmin(user) {
		return true
	}
	for _, r := range p.rules {
		grants := slices.Contains(r.Anonymous, Pull)
		if user != "" {
			grants = grants || slices.Contains(r.Users["*"], Pull) || slices.Contains(r.Users[user], Pull)
			for _, g := range p.groupsOf[user] {
				grants = grants || slices.Contains(r.Groups[g], Pull)
			}
		}
		if grants {
			return true
		}
	}
	return false
}

// actionSet is a bit set over allActions.
type actionSet uint8

const allSet actionSet = 1<<4 - 1 // one bit per entry of allActions

func bit(a Action) actionSet {
	if i := slices.Index(allActions, a); i >= 0 {
		return 1 << i
	}
	return 0
}

func setOf(acts []Action) actionSet {
	var s actionSet
	for _, a := range acts {
		s |= bit(a)
	}
	return s
}

func (s actionSet) has(a Action) bool { b := bit(a); return b != 0 && s&b != 0 }

// list is the set's actions in canonical order.
func (s actionSet) list() []string {
	var out []string
	for i, a := range allActions {
		if s&(1<<i) != 0 {
			out = append(out, a)
		}
	}
	return out
}

func matchAny(patterns []string, repo string) bool {
	for _, p := range patterns {
		if Match(p, repo) {
			return true
		}
	}
	return false
}

// validRepo refuses names no registry route produces: empty, over 255
// bytes, empty, "." or ".." segments. (The registry checks the full OCI
// grammar; this is defence in depth for the glob matcher.)
func validRepo(repo string) bool {
	if repo == "" || len(repo) > 255 {
		return false
	}
	for _, seg := range strings.Split(repo, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// Match reports whether repo matches pattern (internal/pattern: "*"
// within one segment, a "**" segment for one or more whole segments).
func Match(pattern, repo string) bool { return pat.Match(pattern, repo) }
