package auth

import (
	"fmt"
	"strings"
)

// Scope is one entry of the Docker registry token scope grammar
// ("repository:apps/x:pull,push", "registry:catalog:*") and of a token's
// access claim ({"type","name","actions"}).
type Scope struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// maxScopeBytes bounds one scope string: a 255-byte name plus room.
const maxScopeBytes = 512

// ParseScope parses "type:name:action[,action…]". The type runs to the
// first ':' and the actions start after the last one, so the name may
// hold ':' (it is checked against the repository grammar by whoever uses
// it). Types, names and actions are printable ASCII without quotes,
// backslashes, commas (in names) or spaces, so a scope can be quoted
// into a challenge verbatim.
func ParseScope(s string) (Scope, error) {
	if len(s) > maxScopeBytes {
		return Scope{}, fmt.Errorf("scope longer than %d bytes", maxScopeBytes)
	}
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i < 0 {
		return Scope{}, fmt.Errorf("scope %q: want type:name:actions", s)
	}
	name, acts := rest[:i], rest[i+1:]
	if typ == "" || name == "" || acts == "" {
		return Scope{}, fmt.Errorf("scope %q: empty type, name or actions", s)
	}
	for _, c := range typ {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '(' || c == ')' || c == '_' || c == '-' || c == '.') {
			return Scope{}, fmt.Errorf("scope %q: %q not allowed in the type", s, c)
		}
	}
	if !plain(name, ",") {
		return Scope{}, fmt.Errorf("scope %q: invalid character in the name", s)
	}
	sc := Scope{Type: typ, Name: name}
	for a := range strings.SplitSeq(acts, ",") {
		if a == "" || !plain(a, ",:") {
			return Scope{}, fmt.Errorf("scope %q: invalid action %q", s, a)
		}
		sc.Actions = append(sc.Actions, a)
	}
	return sc, nil
}

// plain: printable ASCII other than space, quote, backslash and extra.
func plain(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || strings.IndexByte(extra, c) >= 0 {
			return false
		}
	}
	return true
}

// String is the scope in the grammar ParseScope reads.
func (s Scope) String() string {
	return s.Type + ":" + s.Name + ":" + strings.Join(s.Actions, ",")
}
