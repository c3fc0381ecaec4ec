package blob

import (
	"fmt"

	"github.com/opencontainers/go-digest"
)

// Digest algorithms every driver stores. Anything else is ErrInvalid.
const (
	SHA256 digest.Algorithm = "sha256"
	SHA512 digest.Algorithm = "sha512"
)

// maxUploadID is the longest upload id accepted.
const maxUploadID = 128

// ValidateDigest reports whether d is a digest a driver may turn into a path
// or key: "sha256:" and 64 lowercase hex digits, or "sha512:" and 128. The
// error wraps ErrInvalid. Drivers call it before d touches any path.
func ValidateDigest(d digest.Digest) error {
	// go-digest's check (a registered algorithm, its length in lowercase
	// hex), then the two algorithms stored.
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v: %w", d, err, ErrInvalid)
	}
	if a := d.Algorithm(); a != SHA256 && a != SHA512 {
		return fmt.Errorf("digest %q: unsupported algorithm %s: %w", d, a, ErrInvalid)
	}
	return nil
}

// ValidateUploadID reports whether id is an acceptable upload id: 1 to 128
// characters from [A-Za-z0-9_-]. The error wraps ErrInvalid. Such an id is
// safe as a file name or key component; drivers call it before id touches
// any path.
func ValidateUploadID(id string) error {
	if len(id) == 0 || len(id) > maxUploadID {
		return fmt.Errorf("upload id of length %d: want 1 to %d characters: %w", len(id), maxUploadID, ErrInvalid)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("upload id %q: character %q not in [A-Za-z0-9_-]: %w", id, c, ErrInvalid)
		}
	}
	return nil
}
