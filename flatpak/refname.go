package flatpak

// The rules flatpak itself applies to the parts of a ref
// (common/flatpak-ref-utils.c: flatpak_is_valid_name,
// flatpak_is_valid_arch, flatpak_is_valid_branch), restated:
//
//   - an id is 1 to 255 bytes of 3 or more elements separated by '.';
//     no element is empty (so it neither starts nor ends with '.');
//     elements hold only ASCII letters, digits, '_' and, in the last
//     element only, '-'; an element does not start with a digit;
//   - an arch is one or more ASCII letters, digits or '_';
//   - a branch is one or more ASCII letters, digits, '_', '-' or '.',
//     and does not start with '.'.
//
// So none of them can hold white space, quotes, ';', '$', '|', '/' or any
// other byte a shell or a keyfile gives a meaning to (a branch may still
// start with '-': commands quote every value anyway).

// DeltaIndexTag is the tag under which the flatpak client looks for a
// repository's delta index (flatpak-oci-registry.c,
// flatpak_oci_registry_find_delta_manifest): an OCI image index of delta
// manifests, which package delta maintains. It is content, not an app:
// the index, the catalogue and search leave it out.
const DeltaIndexTag = "_deltaindex"

// ValidName reports whether id is a valid Flatpak application or runtime
// id (flatpak_is_valid_name).
func ValidName(id string) bool {
	if len(id) == 0 || len(id) > 255 {
		return false
	}
	lastDot := -1
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == '.' {
			lastDot = i
			break
		}
	}
	dots := 0
	start := true // at the first byte of an element
	for i := 0; i < len(id); i++ {
		c := id[i]
		last := lastDot >= 0 && i > lastDot
		switch {
		case c == '.':
			if start { // empty element, or a leading '.'
				return false
			}
			dots++
			start = true
			continue
		case start && !nameInitial(c, last):
			return false
		case !start && !nameInitial(c, last) && !('0' <= c && c <= '9'):
			return false
		}
		start = false
	}
	return !start && dots >= 2
}

func nameInitial(c byte, allowDash bool) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || allowDash && c == '-'
}

// ValidArch reports whether a is a valid Flatpak architecture
// (flatpak_is_valid_arch).
func ValidArch(a string) bool {
	if a == "" {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ValidBranch reports whether b is a valid Flatpak branch
// (flatpak_is_valid_branch).
func ValidBranch(b string) bool {
	if b == "" || b[0] == '.' {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
