package oci

import "strings"

// Media types Berth treats specially.
const (
	MediaTypeImageManifest      = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeImageIndex         = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeImageConfig        = "application/vnd.oci.image.config.v1+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeEmptyJSON          = "application/vnd.oci.empty.v1+json"
)

// IsIndex reports whether mediaType is an OCI image index or a Docker manifest
// list. The comparison is exact: pass a media type, not a Content-Type header.
func IsIndex(mediaType string) bool {
	return mediaType == MediaTypeImageIndex || mediaType == MediaTypeDockerManifestList
}

// IsManifestMediaType reports whether mt is one of the four manifest media
// types Berth stores: OCI image manifest and index, Docker manifest v2 schema
// 2 and manifest list. The comparison is exact.
func IsManifestMediaType(mt string) bool {
	switch mt {
	case MediaTypeImageManifest, MediaTypeImageIndex, MediaTypeDockerManifest, MediaTypeDockerManifestList:
		return true
	}
	return false
}

// isNonDistributable reports whether a layer media type marks content the
// registry must not be required to hold (image-spec layer.md, "Non-distributable
// layers", deprecated but still pushed; Docker's foreign layers).
func isNonDistributable(mt string) bool {
	switch mt {
	case "application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
		return true
	}
	return false
}

// validMediaType reports whether s is type "/" subtype, each an RFC 6838
// section 4.2 restricted-name, with no parameters. This is the image-spec
// descriptor rule.
func validMediaType(s string) bool {
	typ, sub, ok := strings.Cut(s, "/")
	return ok && restrictedName(typ) && restrictedName(sub)
}

// restrictedName: restricted-name-first *126restricted-name-chars.
func restrictedName(s string) bool {
	if s == "" || len(s) > 127 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '!', '#', '$', '&', '-', '^', '_', '.', '+':
		default:
			if !isAlnum(c) {
				return false
			}
		}
	}
	return true
}

// contentTypeMediaType returns the media type of a Content-Type header value:
// parameters removed, surrounding whitespace trimmed, lowercased (RFC 9110
// section 8.3.1: type and subtype are case-insensitive).
func contentTypeMediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.Trim(mt, " \t"))
}

// genericMediaType reports Content-Types that say nothing about which kind of
// manifest a body is, so a body without mediaType under them is unidentified
// rather than unsupported.
func genericMediaType(mt string) bool {
	switch mt {
	case "application/json", "application/octet-stream", "text/plain":
		return true
	}
	return false
}
