// Package etag evaluates the If-None-Match precondition (RFC 9110
// §13.1.2) for the answers Berth tags with an entity tag: manifests, the
// Flatpak index and icons.
package etag

import "strings"

// NoneMatch reports whether an If-None-Match header value matches tag:
// it lists tag, compared weakly (a W/ prefix on either side is ignored,
// §8.8.3.2), or it is "*" and exists says the resource has a current
// representation. A match means the condition is false: a GET or HEAD is
// answered 304.
func NoneMatch(header, tag string, exists bool) bool {
	if header == "" {
		return false
	}
	tag = strings.TrimPrefix(tag, "W/")
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" && exists || t != "*" && strings.TrimPrefix(t, "W/") == tag {
			return true
		}
	}
	return false
}
