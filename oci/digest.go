package oci

import (
	"fmt"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// ParseDigest parses s as a content digest Berth can verify: "sha256:" and 64
// lowercase hex digits, or "sha512:" and 128. The result is s itself, which
// then contains only [a-z0-9:] and is safe in a filesystem path or object key.
//
// A string that is a well-formed digest under the image-spec grammar
//
//	algorithm ::= [a-z0-9]+ ([+._-] [a-z0-9]+)*
//	encoded   ::= [a-zA-Z0-9=_-]+
//
// but names another algorithm (sha384, blake3, ...) gives an error wrapping
// ErrUnsupported; anything else gives an error wrapping ErrDigestInvalid.
func ParseDigest(s string) (digest.Digest, error) {
	alg, enc, ok := strings.Cut(s, ":")
	if !ok || !validAlgorithm(alg) || !validEncoded(enc) {
		return "", fmt.Errorf("%w: %s is not of the form algorithm:encoded", ErrDigestInvalid, quote(s))
	}
	a := digest.Algorithm(alg)
	if a != digest.SHA256 && a != digest.SHA512 {
		return "", fmt.Errorf("%w: digest algorithm %s", ErrUnsupported, quote(alg))
	}
	// go-digest's check of the encoded part: the algorithm's length in
	// lowercase hex.
	d := digest.Digest(s)
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%w: %s: a %s digest is %d lowercase hex digits", ErrDigestInvalid, quote(s), alg, a.Size()*2)
	}
	return d, nil
}

// IsDigestRef reports whether a manifest reference is meant as a digest rather
// than a tag: it contains ':', which no tag may. Whether it is a valid digest
// is ParseDigest's question.
func IsDigestRef(ref string) bool { return strings.Contains(ref, ":") }

func validAlgorithm(alg string) bool {
	if alg == "" {
		return false
	}
	sep := true // at the start, or just after a separator
	for i := 0; i < len(alg); i++ {
		switch c := alg[i]; {
		case isLowerAlnum(c):
			sep = false
		case c == '+' || c == '.' || c == '_' || c == '-':
			if sep {
				return false
			}
			sep = true
		default:
			return false
		}
	}
	return !sep
}

func validEncoded(enc string) bool {
	if enc == "" {
		return false
	}
	for i := 0; i < len(enc); i++ {
		if c := enc[i]; !isAlnum(c) && c != '=' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}
