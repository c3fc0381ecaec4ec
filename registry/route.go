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
// most 255 characters, digests 135. Longer paths are NAME_INVALID; up to it,
// an over-long name or digest gets its own error.
const maxPathLen = 8192

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

// checkCanonical refuses a /v2/ path with an empty, "." or ".." segment
// (but the trailing slash of "/v2/" and of ".../blobs/uploads/") or longer
// than maxPathLen: NAME_INVALID, never a redirect or another repository. A
// proxy or client that cleans such a path would send the request to
// another repository than the one named.
func checkCanonical(path string) error {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok || rest == "" {
		return nil
	}
	if len(path) > maxPathLen {
		return errorf(CodeNameInvalid, 0, nil, "path longer than %d bytes", maxPathLen)
	}
	if strings.HasSuffix(rest, "/blobs/uploads/") {
		rest = strings.TrimSuffix(rest, "/")
	}
	for seg := range strings.SplitSeq(rest, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errorf(CodeNameInvalid, 0, nil, "path has an empty, '.' or '..' segment")
		}
	}
	return nil
}

// guessRoute classifies a /v2/ path that parseRoute does not recognise
// because its last part (a digest, a reference, an upload id) is malformed
// and holds slashes: the rightmost "blobs", "manifests" or "referrers"
// segment names the endpoint, so the handler answers what the spec's error
// table intends (DIGEST_INVALID, BLOB_UPLOAD_UNKNOWN, NAME_INVALID) rather
// than "no such endpoint". The ref or upload id it returns may hold
// slashes; every handler refuses it.
func guessRoute(path string) route {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok || len(path) > maxPathLen {
		return route{}
	}
	elem := strings.Split(rest, "/")
	for i := len(elem) - 2; i >= 1; i-- {
		if elem[i] != "blobs" && elem[i] != "manifests" && elem[i] != "referrers" {
			continue
		}
		name, tail := strings.Join(elem[:i], "/"), strings.Join(elem[i+1:], "/")
		if name == "" {
			return route{}
		}
		switch elem[i] {
		case "blobs":
			if up, ok := strings.CutPrefix(tail, "uploads/"); ok {
				return route{kind: kindUpload, name: name, upload: up}
			}
			return route{kind: kindBlob, name: name, ref: tail}
		case "manifests":
			return route{kind: kindManifest, name: name, ref: tail}
		case "referrers":
			return route{kind: kindReferrers, name: name, ref: tail}
		}
	}
	return route{}
}
