// Package oci owns the OCI vocabulary Berth speaks: media types, parsing and
// validating image manifests and indexes into one descriptor graph (config,
// layers, manifests, subject, artifactType, annotations, platform), reading
// the few facts Berth records from an image config, and the grammar of
// repository names, tags and digests.
//
// Everything here is a pure function over bytes and strings: no I/O, no HTTP,
// no storage. The rules follow the OCI distribution-spec v1.1 and image-spec
// v1.1; where the specs leave a choice, this package takes the strict side
// when being lenient could let two parsers read one document differently
// (CVE-2021-41190), and the lenient side otherwise.
//
// Errors wrap one of the sentinels ErrNameInvalid, ErrTagInvalid,
// ErrDigestInvalid, ErrManifestInvalid or ErrUnsupported, with a reason fit to
// show a client. Mapping them to spec error codes is the registry's job.
//
// Only sha256 and sha512 digests are accepted, so a digest returned by
// ParseDigest is always [a-z0-9:] and safe to use in a filesystem path or
// object key.
package oci

import (
	"errors"
	"fmt"
	"strconv"
)

// Error categories. Every error returned by this package wraps exactly one.
var (
	ErrNameInvalid     = errors.New("invalid repository name")
	ErrTagInvalid      = errors.New("invalid tag")
	ErrDigestInvalid   = errors.New("invalid digest")
	ErrManifestInvalid = errors.New("invalid manifest")
	// ErrUnsupported reports well-formed input Berth does not handle: a
	// manifest media type other than the four below, or a digest algorithm
	// other than sha256 and sha512.
	ErrUnsupported = errors.New("unsupported")
)

// quote formats user input for an error message, cut short so an error never
// echoes a large request.
func quote(s string) string {
	const limit = 80
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}

// charName formats one byte of user input for an error message.
func charName(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("byte 0x%02x", c)
	}
	return fmt.Sprintf("%q", c)
}
