package registry

import (
	"strings"
)

// kind is the endpoint a /v2/ path names.
type kind int

const (
	kindNone kind = iota
	kindBase
	kindCatalog
	kindTags
	kindManifest
	kindBlob
	kindUploadStart
	kindUpload
	kindReferrers
)

// route is a parsed /v2/ path. Name, Ref and Upload are not validated here.
type route struct {
	kind   kind
	name   string
	ref    string // tag or digest (manifests), digest (blobs, referrers)
	upload string // upload session id
}

// maxPathLen bounds the path before it is split; the spec's names are at
// most 255 characters, digests 135.
const maxPathLen = 1024

// parseRoute parses a request path under /v2/. Repository names contain
// slashes, so the endpoint is recognised from the right end of the path.
func parseRoute(path string) route {
	if path == "/v2" || path == "/v2/" {
		return route{kind: kindBase}
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok || len(path) > maxPathLen {
		return route{}
	}
	if rest == "_catalog" {
		return route{kind: kindCatalog}
	}
	elem := strings.Split(rest, "/")
	n := len(elem)
	if n < 3 {
		return route{}
	}
	name := func(k int) string { return strings.Join(elem[:n-k], "/") }
	last, prev := elem[n-1], elem[n-2]
	switch {
	case n >= 4 && elem[n-3] == "blobs" && prev == "uploads":
		if last == "" {
			return route{kind: kindUploadStart, name: name(3)}
		}
		return route{kind: kindUpload, name: name(3), upload: last}
	case prev == "blobs" && last == "uploads":
		return route{kind: kindUploadStart, name: name(2)}
	case prev == "blobs":
		return route{kind: kindBlob, name: name(2), ref: last}
	case prev == "manifests":
		return route{kind: kindManifest, name: name(2), ref: last}
	case prev == "tags" && last == "list":
		return route{kind: kindTags, name: name(2)}
	case prev == "referrers":
		return route{kind: kindReferrers, name: name(2), ref: last}
	}
	return route{}
}
