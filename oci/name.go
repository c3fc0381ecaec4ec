package oci

import "fmt"

// MaxNameLength is the longest repository name accepted, in bytes. The
// distribution-spec leaves the limit to registries; 255 is distribution's.
const MaxNameLength = 255

// ValidateName reports whether name is a repository name under the
// distribution-spec grammar
//
//	[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
//
// and at most MaxNameLength bytes long. The error wraps ErrNameInvalid and
// says what is wrong. A valid name has no empty, "." or ".." path component.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrNameInvalid)
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("%w: %d bytes long, the limit is %d", ErrNameInvalid, len(name), MaxNameLength)
	}
	if reason := nameProblem(name); reason != "" {
		return fmt.Errorf("%w: %s: %s", ErrNameInvalid, quote(name), reason)
	}
	return nil
}

// nameProblem scans name once and returns why it breaks the grammar, or "".
func nameProblem(name string) string {
	start := true // at the start of a path component
	for i := 0; i < len(name); {
		c := name[i]
		if isLowerAlnum(c) {
			start = false
			i++
			continue
		}
		var j int // end of the separator run starting at i
		switch c {
		case '/':
			if start {
				return fmt.Sprintf("empty path component at offset %d", i)
			}
			start = true
			i++
			continue
		case '.':
			j = i + 1
		case '_':
			j = i + 1
			if j < len(name) && name[j] == '_' {
				j++
			}
		case '-':
			j = i + 1
			for j < len(name) && name[j] == '-' {
				j++
			}
		default:
			if 'A' <= c && c <= 'Z' {
				return fmt.Sprintf("uppercase letter %q at offset %d", c, i)
			}
			return fmt.Sprintf("invalid character %s at offset %d", charName(c), i)
		}
		switch {
		case start:
			return fmt.Sprintf("path component starts with separator %q at offset %d", c, i)
		case j == len(name) || name[j] == '/':
			return fmt.Sprintf("path component ends with separator %q at offset %d", name[i:j], i)
		case !isLowerAlnum(name[j]):
			return fmt.Sprintf("invalid separator %q at offset %d", name[i:j+1], i)
		}
		i = j
	}
	if start {
		return "ends with '/'"
	}
	return ""
}

// ValidateTag reports whether tag matches the distribution-spec grammar
// [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}. The error wraps ErrTagInvalid.
func ValidateTag(tag string) error {
	switch {
	case tag == "":
		return fmt.Errorf("%w: empty", ErrTagInvalid)
	case len(tag) > 128:
		return fmt.Errorf("%w: %d bytes long, the limit is 128", ErrTagInvalid, len(tag))
	case tag[0] == '.' || tag[0] == '-':
		return fmt.Errorf("%w: %s: must not start with %q", ErrTagInvalid, quote(tag), tag[0])
	}
	for i := 0; i < len(tag); i++ {
		if c := tag[i]; !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return fmt.Errorf("%w: %s: invalid character %s at offset %d", ErrTagInvalid, quote(tag), charName(c), i)
		}
	}
	return nil
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isAlnum(c byte) bool { return isLowerAlnum(c) || 'A' <= c && c <= 'Z' }
